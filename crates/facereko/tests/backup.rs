//! `facereko backup` / `restore`: the door's data moves to another data directory whole, an existing
//! one is replaced only on request (and kept), and an archive that is not a backup changes nothing.

mod common;

use std::path::Path;

use common::{facereko, ok, Daemon};

fn fails(data: &Path, args: &[&str]) -> String {
    let out = facereko(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_backup_restores_people_cards_photos_and_config_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let door = dir.path().join("door");
    std::fs::create_dir_all(door.join("photos/attempts/2026-12")).unwrap();
    std::fs::write(
        door.join("facereko.toml"),
        "door_id = \"front\"\n[door]\nmode = \"card\"\n",
    )
    .unwrap();
    ok(
        &door,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let photo = door.join("photos/attempts/2026-12/a1.jpg");
    std::fs::write(&photo, b"\xFF\xD8\xFF\xE0 a photo").unwrap();

    // Taken while the daemon runs.
    let daemon = Daemon::start(&door, &["--simulate"]);
    let archive = dir.path().join("door.tar.gz");
    let said = ok(&door, &["backup", archive.to_str().unwrap()]);
    assert!(
        said.contains("1 photos") && said.contains("facereko.toml"),
        "{said}"
    );
    let again = fails(&door, &["backup", archive.to_str().unwrap()]);
    assert!(again.contains("already exists"), "{again}");
    // Never restored under a running daemon.
    let busy = fails(&door, &["restore", archive.to_str().unwrap(), "--force"]);
    assert!(busy.contains("daemon is running"), "{busy}");
    assert!(daemon.stop().success());

    // A new machine: everything comes back.
    let other = dir.path().join("other");
    let said = ok(&other, &["restore", archive.to_str().unwrap()]);
    assert!(said.contains("1 photos"), "{said}");
    let people = ok(&other, &["people", "list", "--json"]);
    assert!(
        people.contains("Ada Lovelace") && people.contains("04:A2:2B:19"),
        "{people}"
    );
    assert_eq!(
        std::fs::read(other.join("photos/attempts/2026-12/a1.jpg")).unwrap(),
        std::fs::read(&photo).unwrap()
    );
    assert!(std::fs::read_to_string(other.join("facereko.toml"))
        .unwrap()
        .contains("front"));

    // Over an existing database: only with --force, and the old one is kept.
    ok(&other, &["people", "add", "Bob"]);
    let refused = fails(&other, &["restore", archive.to_str().unwrap()]);
    assert!(refused.contains("--force"), "{refused}");
    ok(&other, &["restore", archive.to_str().unwrap(), "--force"]);
    let people = ok(&other, &["people", "list", "--json"]);
    assert!(!people.contains("Bob"), "{people}");
    assert!(other.join("facereko.db.before-restore").is_file());
    assert!(other.join("facereko.toml.from-backup").is_file());
}

#[test]
fn an_archive_that_is_not_a_backup_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let door = dir.path().join("door");
    std::fs::create_dir_all(&door).unwrap();
    ok(&door, &["people", "add", "Ada Lovelace"]);
    let junk = dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"not an archive at all").unwrap();
    let err = fails(&door, &["restore", junk.to_str().unwrap(), "--force"]);
    assert!(err.contains("junk.tar.gz"), "{err}");
    // A real archive with a path that climbs out of the data directory.
    let evil = dir.path().join("evil.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&evil).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "photos/x.jpg", &b"abcd"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "notes/x.txt", &b"abcd"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let err = fails(&door, &["restore", evil.to_str().unwrap(), "--force"]);
    assert!(err.contains("no FaceReko backup has"), "{err}");
    let people = ok(&door, &["people", "list", "--json"]);
    assert!(
        people.contains("Ada Lovelace"),
        "nothing was replaced: {people}"
    );
    assert!(!door.join("facereko.db.before-restore").exists());
}
