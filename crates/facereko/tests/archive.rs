//! `facereko export` / `import`: the people directory (people, cards, faces with photos) moves to another
//! door; a dry run reports exactly what the import then does and changes nothing; a card owned by someone
//! else is never moved; a broken or hostile archive is refused before anything is written.

mod common;

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use common::{facereko, ok};
use facereko_domain::{CardUid, Photo, WeeklySchedule, Window};
use facereko_store::Store;
use serde_json::Value;

/// A model no door of these tests uses (the dlib engine's id).
const DLIB: &str = "dlib-resnet-v1";

/// The model id of the default local engine, which the doors of these tests use, and its embedding
/// length.
fn model() -> (String, usize) {
    let v = facereko_vision::VisionConfig::default();
    assert_ne!(v.model_id(), DLIB);
    (v.model_id(), v.local_engine.embedding_dim())
}

fn fails(data: &Path, args: &[&str]) -> String {
    let out = facereko(data, args);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A data directory whose face models folder is empty: the engine never loads, whatever is installed.
fn door(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("no-models")).unwrap();
    std::fs::write(
        dir.join("facereko.toml"),
        format!(
            "door_id = {name:?}\n[vision]\nmodels_dir = {:?}\n",
            dir.join("no-models").display().to_string()
        ),
    )
    .unwrap();
    dir
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on the door's store, opened as the binary opens it (default SQLite in the data directory).
fn with_store<T>(data: &Path, f: impl AsyncFnOnce(&Store) -> T) -> T {
    runtime().block_on(async {
        let store = Store::open(&Store::default_url(data), data).await.unwrap();
        let out = f(&store).await;
        store.close().await;
        out
    })
}

/// A small JPEG, different for each `shade`.
fn jpeg(shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([shade, 255 - shade, shade / 2]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn embedding(seed: usize, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| ((seed * 31 + i * 7) % 97) as f32 / 97.0 - 0.4)
        .collect()
}

fn uid(s: &str) -> CardUid {
    s.parse().unwrap()
}

/// `people list --json` without the ids, which differ between doors.
fn people(data: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&ok(data, &["people", "list", "--json"])).unwrap();
    for p in v.as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("id");
        for c in p["cards"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("person_id");
        }
    }
    v
}

/// Each person's faces as (name, model id, embedding, photo bytes), sorted.
type FaceView = (String, String, Vec<u32>, Option<Vec<u8>>);

fn faces(data: &Path) -> Vec<FaceView> {
    with_store(data, async |store| {
        let mut out = Vec::new();
        for p in store.list_people().await.unwrap() {
            for f in store.faces(Some(p.id)).await.unwrap() {
                let photo = match &f.photo {
                    Some(rel) => Some(store.read_photo(rel).await.unwrap().bytes),
                    None => None,
                };
                let bits = f.embedding.iter().map(|x| x.to_bits()).collect();
                out.push((p.name.clone(), f.model_id.clone(), bits, photo));
            }
        }
        out.sort();
        out
    })
}

fn import_json(data: &Path, archive: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["import", archive.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(data, &args)).unwrap()
}

/// Files under the data directory's `photos/`.
fn photo_files(data: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { walk(&p) } else { 1 })
            .sum()
    }
    walk(&data.join("photos"))
}

/// Door A: three people with cards (one labelled and switched off), validity, a schedule and faces of
/// this model, another model and none with a photo.
fn seed_source(a: &Path) {
    let (model, dim) = model();
    ok(
        a,
        &[
            "people",
            "add",
            "Ada Lovelace",
            "--card",
            "04:A2:2B:19",
            "--card",
            "04:11:22:33:44:55:66",
        ],
    );
    ok(a, &["people", "add", "Bob, \"the builder\""]);
    ok(a, &["people", "disable", "Bob, \"the builder\""]);
    ok(a, &["people", "add", "Carol"]);
    with_store(a, async |s| {
        let ada = s.person_by_name("Ada Lovelace").await.unwrap().unwrap();
        let bob = s
            .person_by_name("Bob, \"the builder\"")
            .await
            .unwrap()
            .unwrap();
        let mut carol = s.person_by_name("Carol").await.unwrap().unwrap();
        s.add_card(bob.id, &uid("04:0B:0B:0B"), Some("blue fob, spare"))
            .await
            .unwrap();
        s.set_card_active(&uid("04:0B:0B:0B"), false).await.unwrap();
        carol.valid_from = Some(Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap());
        carol.valid_until = Some(Utc.with_ymd_and_hms(2026, 12, 31, 18, 30, 0).unwrap());
        carol.schedule = Some(WeeklySchedule {
            windows: vec![Window {
                days: vec![1, 2, 3, 4, 5],
                start_minute: 8 * 60,
                end_minute: 18 * 60,
            }],
        });
        s.update_person(&carol).await.unwrap();
        for (i, shade) in [10u8, 200].into_iter().enumerate() {
            let photo = Photo::from_bytes(jpeg(shade)).unwrap();
            s.add_face(ada.id, &embedding(i, dim), &model, Some(&photo))
                .await
                .unwrap();
        }
        let photo = Photo::from_bytes(jpeg(90)).unwrap();
        s.add_face(bob.id, &embedding(7, 128), DLIB, Some(&photo))
            .await
            .unwrap();
        s.add_face(carol.id, &embedding(9, dim), &model, None)
            .await
            .unwrap();
    });
}

#[test]
fn an_export_imports_into_a_fresh_door_after_a_dry_run_that_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let a = door(root.path(), "front");
    seed_source(&a);
    let archive = root.path().join("people.tar.gz");
    let said = ok(&a, &["export", archive.to_str().unwrap()]);
    assert!(
        said.contains("exported 3 people, 3 cards and 4 faces (3 photos)"),
        "{said}"
    );
    let again = fails(&a, &["export", archive.to_str().unwrap()]);
    assert!(again.contains("already exists"), "{again}");

    let b = door(root.path(), "back");
    ok(&b, &["migrate"]);
    let before = people(&b);
    let dry = import_json(&b, &archive, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["archive"]["door_id"], "front");
    assert_eq!(
        dry["people"],
        serde_json::json!({"added": 3, "updated": 0, "unchanged": 0, "skipped": 0})
    );
    assert_eq!(
        dry["cards"],
        serde_json::json!({"added": 3, "updated": 0, "unchanged": 0, "conflicting": 0, "skipped": 0})
    );
    assert_eq!(
        dry["faces"],
        serde_json::json!({"added": 3, "recomputed": 0, "needs_reenrolment": 1, "unusable": 0,
                           "already_present": 0, "skipped": 0})
    );
    assert_eq!(
        dry["needs_reenrolment"][0]["person"],
        "Bob, \"the builder\""
    );
    assert_eq!(people(&b), before, "a dry run adds nobody");
    assert!(faces(&b).is_empty(), "a dry run adds no face");
    assert_eq!(photo_files(&b), 0, "a dry run writes no photo");

    let done = import_json(&b, &archive, &[]);
    assert_eq!(done["dry_run"], false);
    for part in ["people", "cards", "faces"] {
        assert_eq!(done[part], dry[part], "the dry run foretold the {part}");
    }
    assert_eq!(people(&b), people(&a));
    assert_eq!(faces(&b), faces(&a), "faces, embeddings and photos match");
    assert_eq!(photo_files(&b), 3);
    // The import is one entry of b's audit trail, with what it did; the dry run left none.
    let trail = with_store(&b, async |store| {
        store
            .audit_entries(&facereko_store::AuditQuery::default())
            .await
            .unwrap()
    });
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].action, "person.import");
    assert!(trail[0].detail.starts_with("people 3 added"), "{trail:?}");
    let text = ok(&b, &["import", archive.to_str().unwrap()]);
    assert!(
        text.contains("people: 0 added, 0 updated, 0 unchanged, 3 skipped")
            && text.contains("skipped: Carol exists here"),
        "{text}"
    );

    // Importing the same archive again with --update adds nothing twice.
    let again = import_json(&b, &archive, &["--update"]);
    assert_eq!(again["people"]["unchanged"], 3, "{again}");
    assert_eq!(again["cards"]["unchanged"], 3, "{again}");
    assert_eq!(again["faces"]["already_present"], 4, "{again}");
    assert_eq!(faces(&b), faces(&a));
    assert_eq!(photo_files(&b), 3);
    // No staging folder is left behind in the data directory.
    let left: Vec<_> = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_card_owned_by_someone_else_is_never_moved_and_existing_people_change_only_with_update() {
    let root = tempfile::tempdir().unwrap();
    let a = door(root.path(), "front");
    ok(&a, &["people", "add", "Ada", "--card", "04:A2:2B:19"]);
    ok(&a, &["people", "add", "Dan", "--card", "04:D0:D0:D0"]);
    let archive = root.path().join("people.tar.gz");
    ok(&a, &["export", archive.to_str().unwrap()]);

    let b = door(root.path(), "back");
    ok(&b, &["people", "add", "Eve", "--card", "04:A2:2B:19"]);
    ok(&b, &["people", "add", "Dan"]);
    ok(&b, &["people", "disable", "Dan"]);

    let r = import_json(&b, &archive, &[]);
    assert_eq!(r["people"]["added"], 1, "{r}");
    assert_eq!(r["people"]["skipped"], 1, "{r}");
    assert_eq!(r["skipped_people"], serde_json::json!(["Dan"]));
    assert_eq!(r["cards"]["conflicting"], 1, "{r}");
    assert_eq!(r["cards"]["skipped"], 1, "{r}");
    assert_eq!(
        r["conflicts"],
        serde_json::json!([{"uid": "04:A2:2B:19", "person": "Ada", "owner": "Eve"}])
    );
    let list = people(&b);
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("Eve")["cards"][0]["uid"], "04:A2:2B:19");
    assert_eq!(by_name("Ada")["cards"], serde_json::json!([]));
    assert_eq!(by_name("Dan")["active"], false);
    assert_eq!(by_name("Dan")["cards"], serde_json::json!([]));

    let text = ok(&b, &["import", archive.to_str().unwrap(), "--update"]);
    assert!(
        text.contains("people: 0 added, 1 updated, 1 unchanged, 0 skipped")
            && text.contains("cards: 1 added, 0 updated, 0 unchanged, 1 conflicting, 0 skipped")
            && text.contains("conflict: card 04:A2:2B:19 belongs to Eve here; not given to Ada"),
        "{text}"
    );
    let list = people(&b);
    let dan = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Dan")
        .unwrap();
    assert_eq!(
        dan["active"], true,
        "--update enabled Dan as in the archive"
    );
    assert_eq!(dan["cards"][0]["uid"], "04:D0:D0:D0");
    let eve = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Eve")
        .unwrap();
    assert_eq!(eve["cards"][0]["uid"], "04:A2:2B:19", "still Eve's");
}

/// An archive's members, to be altered and packed again.
type Members = Vec<(String, Vec<u8>)>;

fn unpack(archive: &Path) -> Members {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

/// Packs members with their names written raw into the header (the `tar` crate would refuse `..`).
fn pack(path: &Path, members: &Members, link: Option<(&str, &str)>) {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let header = |name: &str, size: u64, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h
    };
    for (name, bytes) in members {
        let mut h = header(name, bytes.len() as u64, tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, bytes.as_slice()).unwrap();
    }
    if let Some((name, target)) = link {
        let mut h = header(name, 0, tar::EntryType::Symlink);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        tar.append(&h, std::io::empty()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// What is wrong, the archive's members, a symbolic link to add, and what the refusal must say.
type Case<'a> = (&'a str, Members, Option<(&'a str, &'a str)>, &'a str);

fn edit(members: &Members, name: &str, f: impl Fn(String) -> String) -> Members {
    members
        .iter()
        .map(|(n, b)| {
            if n == name {
                let text = f(String::from_utf8(b.clone()).unwrap());
                (n.clone(), text.into_bytes())
            } else {
                (n.clone(), b.clone())
            }
        })
        .collect()
}

#[test]
fn a_broken_or_hostile_archive_is_refused_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let a = door(root.path(), "front");
    seed_source(&a);
    let archive = root.path().join("people.tar.gz");
    ok(&a, &["export", archive.to_str().unwrap()]);
    let good = unpack(&archive);
    let photo = good
        .iter()
        .find(|(n, _)| n.starts_with("photos/"))
        .unwrap()
        .0
        .clone();

    let b = door(root.path(), "back");
    ok(&b, &["people", "add", "Zed", "--card", "04:FF:FF:FF"]);
    let before = (people(&b), faces(&b), photo_files(&b));

    let mut cases: Vec<Case> = Vec::new();
    let mut climbing = good.clone();
    climbing.push(("../escaped.jpg".into(), jpeg(1)));
    cases.push(("climbing", climbing, None, "which no export has"));
    let mut nested = good.clone();
    nested.push(("photos/../../escaped.jpg".into(), jpeg(1)));
    cases.push(("nested climbing", nested, None, "which no export has"));
    cases.push((
        "symlink",
        good.clone(),
        Some(("photos/link.jpg", "/etc/passwd")),
        "plain files only",
    ));
    let without_photo: Members = good.iter().filter(|(n, _)| *n != photo).cloned().collect();
    let without_photo = edit(&without_photo, "MANIFEST.json", |m| {
        m.replace("\"photos\": 3", "\"photos\": 2")
    });
    cases.push((
        "missing photo",
        without_photo,
        None,
        "is missing from the archive",
    ));
    let bad_csv = edit(&good, "people.csv", |t| t + "\"Dora,true,,,\n");
    cases.push(("bad csv", bad_csv, None, "never closed"));
    let bad_uid = edit(&good, "cards.csv", |t| t.replace("04:A2:2B:19", "04:A2:2B"));
    cases.push(("bad uid", bad_uid, None, "04:A2:2B"));
    let newer = edit(&good, "MANIFEST.json", |m| {
        m.replace("\"version\": 1", "\"version\": 2")
    });
    cases.push(("newer version", newer, None, "version 2 is newer"));
    let truncated = edit(&good, "people.csv", |t| {
        t.lines().take(2).map(|l| format!("{l}\n")).collect()
    });
    cases.push(("cut short", truncated, None, "incomplete or was altered"));
    let not_photo = good
        .iter()
        .map(|(n, b)| {
            let b = if *n == photo {
                b"MZ not a photo".to_vec()
            } else {
                b.clone()
            };
            (n.clone(), b)
        })
        .collect();
    cases.push(("not a photo", not_photo, None, "neither a JPEG nor a PNG"));
    let huge = good
        .iter()
        .map(|(n, b)| {
            let b = if *n == photo {
                vec![0u8; (32 << 20) + 1]
            } else {
                b.clone()
            };
            (n.clone(), b)
        })
        .collect();
    cases.push(("huge member", huge, None, "at most 33554432 are accepted"));
    let mut unknown = good.clone();
    unknown.push(("facereko.db".into(), b"SQLite format 3\0".to_vec()));
    cases.push(("unknown member", unknown, None, "which no export has"));

    for (i, (what, members, link, says)) in cases.into_iter().enumerate() {
        let file = root.path().join(format!("case-{i}.tar.gz"));
        pack(&file, &members, link);
        for extra in [&["--dry-run"][..], &[], &["--update"]] {
            let mut args = vec!["import", file.to_str().unwrap()];
            args.extend_from_slice(extra);
            let err = fails(&b, &args);
            assert!(
                err.contains(says) && err.contains("nothing was changed"),
                "{what} {extra:?}: {err}"
            );
        }
        assert!(
            !root.path().join("escaped.jpg").exists() && !b.join("escaped.jpg").exists(),
            "{what}"
        );
    }
    // The same archive unaltered imports, so each refusal above was for its defect.
    let repacked = root.path().join("repacked.tar.gz");
    pack(&repacked, &good, None);
    let r = import_json(&b, &repacked, &["--dry-run"]);
    assert_eq!(r["people"]["added"], 3, "{r}");

    let junk = root.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not an archive at all").unwrap();
    let err = fails(&b, &["import", junk.to_str().unwrap()]);
    assert!(err.contains("junk.tar.gz"), "{err}");
    let err = fails(&b, &["import", "/dev/zero"]);
    assert!(err.contains("not a regular file"), "{err}");

    assert_eq!((people(&b), faces(&b), photo_files(&b)), before);
}

fn env_dir(var: &str) -> PathBuf {
    let v =
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (scripts/test.sh sets it)"));
    PathBuf::from(v)
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
fn a_face_of_another_model_is_embedded_again_from_its_photo() {
    let models = env_dir("FACEREKO_MODELS_DIR");
    let face = env_dir("FACEREKO_FACES_DIR").join("lfw-dev/Aaron_Peirsol/01.jpg");
    let root = tempfile::tempdir().unwrap();
    let a = door(root.path(), "front");
    ok(&a, &["people", "add", "Aaron", "--card", "04:A2:2B:19"]);
    let blank = {
        let img = image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    with_store(&a, async |s| {
        let aaron = s.person_by_name("Aaron").await.unwrap().unwrap();
        let photo = Photo::from_bytes(std::fs::read(&face).unwrap()).unwrap();
        s.add_face(aaron.id, &embedding(1, 128), DLIB, Some(&photo))
            .await
            .unwrap();
        let photo = Photo::from_bytes(blank).unwrap();
        s.add_face(aaron.id, &embedding(2, 128), DLIB, Some(&photo))
            .await
            .unwrap();
    });
    let archive = root.path().join("people.tar.gz");
    ok(&a, &["export", archive.to_str().unwrap()]);

    let b = root.path().join("back");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("facereko.toml"),
        format!(
            "[vision]\nlocal_engine = \"onnx\"\nmodels_dir = {:?}\n",
            models.display().to_string()
        ),
    )
    .unwrap();
    let dry = import_json(&b, &archive, &["--dry-run"]);
    assert_eq!(dry["faces"]["recomputed"], 1, "{dry}");
    assert_eq!(dry["faces"]["unusable"], 1, "{dry}");
    assert!(
        dry["unusable_faces"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no usable face"),
        "{dry}"
    );
    assert!(faces(&b).is_empty());
    let done = import_json(&b, &archive, &[]);
    assert_eq!(done["faces"], dry["faces"]);
    let imported = faces(&b);
    assert_eq!(imported.len(), 1);
    let (model, dim) = model();
    assert_eq!(imported[0].1, model);
    assert_eq!(imported[0].2.len(), dim);
    assert_eq!(
        imported[0].3.as_deref(),
        Some(std::fs::read(&face).unwrap().as_slice())
    );
}
