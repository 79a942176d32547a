//! The local engine with the real dlib models on real photos.
//!
//! Needs `FACEREKO_MODELS_DIR` (the installed models) and `FACEREKO_FACES_DIR` (the shared face photos);
//! `.ci/run` sets both and runs these with `--include-ignored`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facereko_domain::{PersonId, Photo};
use facereko_vision::{Error, FaceEngine, Gallery, LocalEngine, VisionConfig};
use image::{ImageEncoder, RgbImage};

fn env_dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} must be set for the real-model tests (CI's .ci/run sets it)")
    }))
}

fn engine() -> &'static LocalEngine {
    static ENGINE: OnceLock<LocalEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        LocalEngine::load(&VisionConfig::default(), &env_dir("FACEREKO_MODELS_DIR"))
            .expect("loading the models")
    })
}

fn lfw(rel: &str) -> Vec<u8> {
    let path = env_dir("FACEREKO_FACES_DIR").join("lfw-dev").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn photo(bytes: Vec<u8>) -> Photo {
    Photo::from_bytes(bytes).expect("a JPEG or PNG")
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// Identities of the fixed sample and two of their photos.
const SAMPLE: [(&str, &str, &str); 6] = [
    ("Al_Gore", "01.jpg", "02.jpg"),
    ("Adam_Sandler", "01.jpg", "02.jpg"),
    ("Alan_Greenspan", "01.jpg", "02.jpg"),
    ("Adrien_Brody", "01.jpg", "02.jpg"),
    ("Al_Sharpton", "01.jpg", "02.jpg"),
    ("Alec_Baldwin", "01.jpg", "02.jpg"),
];

fn sample_path(id: &str, file: &str) -> String {
    format!("{id}/{file}")
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
fn same_person_pairs_score_above_the_threshold_and_others_below() {
    let e = engine();
    let threshold = e.config().threshold;
    let describe = |rel: String| {
        e.describe_blocking(&lfw(&rel))
            .unwrap()
            .unwrap_or_else(|| panic!("no face in {rel}"))
            .embedding
    };
    let pairs: Vec<_> = SAMPLE
        .iter()
        .map(|(id, a, b)| (describe(sample_path(id, a)), describe(sample_path(id, b))))
        .collect();
    for ((id, ..), (a, b)) in SAMPLE.iter().zip(&pairs) {
        let s = facereko_vision::similarity_percent(a.cosine(b));
        assert!(
            s >= threshold,
            "{id}: same person at {s:.1} % < threshold {threshold}"
        );
    }
    for (i, (a, _)) in pairs.iter().enumerate() {
        for (j, (_, b)) in pairs.iter().enumerate().filter(|(j, _)| *j != i) {
            let s = facereko_vision::similarity_percent(a.cosine(b));
            assert!(
                s < threshold,
                "{} vs {}: different people at {s:.1} % ≥ threshold {threshold}",
                SAMPLE[i].0,
                SAMPLE[j].0
            );
        }
    }
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn verify_and_identify_against_an_enrolled_gallery() {
    let e = engine().clone();
    let mut rows = Vec::new();
    for (i, (id, first, _)) in SAMPLE.iter().enumerate() {
        let enrolled = e.embed(&photo(lfw(&sample_path(id, first)))).await.unwrap();
        assert_eq!(enrolled.face.faces_in_photo, Some(1), "{id}");
        rows.push((PersonId(i as i64 + 1), enrolled.embedding.into_vec()));
    }
    e.set_gallery(Gallery::new(rows).unwrap());
    assert_eq!(e.gallery().people(), SAMPLE.len());

    let (id, _, second) = SAMPLE[2];
    let probe = photo(lfw(&sample_path(id, second)));
    let v = e.verify(&probe, PersonId(3)).await.unwrap();
    assert_eq!(v.matched, Some(PersonId(3)), "{v:?}");
    assert!(v.face.is_some() && v.distance.is_some() && v.detect_ms.is_some());
    let v = e.verify(&probe, PersonId(1)).await.unwrap();
    assert_eq!(v.matched, None, "the card owner is someone else: {v:?}");
    assert!(v.similarity.unwrap() < e.config().threshold);
    let v = e.identify(&probe).await.unwrap();
    assert_eq!(v.matched, Some(PersonId(3)), "{v:?}");
    assert_eq!(v.engine, "local");

    // Someone nobody enrolled is "unknown".
    let stranger = photo(lfw("Alejandro_Toledo/01.jpg"));
    let v = e.identify(&stranger).await.unwrap();
    assert!(v.face.is_some());
    assert_eq!(v.matched, None, "{v:?}");
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR (set by .ci/run)"]
async fn a_photo_without_a_face_has_no_face() {
    let e = engine();
    // A smooth gradient with some blocks: nothing a face detector should take for a face.
    let img = RgbImage::from_fn(640, 480, |x, y| {
        let block = ((x / 80 + y / 60) % 2) as u8 * 40;
        image::Rgb([(x / 3) as u8, (y / 2) as u8, 120 + block])
    });
    let p = photo(jpeg(&img));
    let v = e.identify(&p).await.unwrap();
    assert_eq!(v.face, None);
    assert_eq!(v.matched, None);
    match e.embed(&p).await {
        Err(Error::NoFace { .. }) => {}
        other => panic!("expected NoFace, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn enrolment_refuses_a_photo_of_two_people_saying_how_many() {
    let e = engine();
    let a = image::load_from_memory(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .to_rgb8();
    let b = image::load_from_memory(&lfw("Alan_Greenspan/01.jpg"))
        .unwrap()
        .to_rgb8();
    let mut both = RgbImage::from_pixel(620, 300, image::Rgb([110, 110, 110]));
    image::imageops::replace(&mut both, &a, 40, 25);
    image::imageops::replace(&mut both, &b, 330, 25);
    match e.embed(&photo(jpeg(&both))).await {
        Err(Error::ManyFaces(2)) => {}
        Err(other) => panic!("expected ManyFaces(2), got {other}"),
        Ok(enrolled) => panic!("expected ManyFaces(2), got one face: {:?}", enrolled.face),
    }
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn hostile_images_are_clear_errors() {
    let e = engine();
    let good = lfw("Al_Gore/01.jpg");
    let mut truncated = good[..good.len() * 2 / 3].to_vec();
    let mut one_px = Vec::new();
    image::codecs::png::PngEncoder::new(&mut one_px)
        .write_image(&[1, 2, 3], 1, 1, image::ExtendedColorType::Rgb8)
        .unwrap();
    // The real photo's header rewritten to claim 20000×20000 pixels.
    let mut huge = good.clone();
    let sof = huge
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .expect("a SOF marker");
    huge[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage.extend((0..5000u32).map(|i| (i * 7919 % 251) as u8));
    garbage.extend([0xFF, 0xD9]);
    for (what, bytes, expect) in [
        (
            "truncated JPEG",
            std::mem::take(&mut truncated),
            "truncated",
        ),
        ("1×1 PNG", one_px, "1×1"),
        ("20000×20000 header", huge, "20000×20000"),
        ("corrupt JPEG", garbage, "could not be read"),
    ] {
        let p = Photo::from_bytes(bytes).unwrap();
        for result in [
            e.identify(&p).await.map(|_| ()),
            e.embed(&p).await.map(|_| ()),
        ] {
            match result {
                Err(err @ Error::Image(_)) => {
                    let msg = err.to_string();
                    assert!(msg.contains(expect), "{what}: {msg}");
                }
                other => panic!("{what}: expected an image error, got {other:?}"),
            }
        }
    }
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
fn frontal_grey_photos_of_one_person_match() {
    let e = engine();
    let dir = env_dir("FACEREKO_FACES_DIR").join("yale");
    let read = |p: &Path| std::fs::read(p).unwrap();
    let a = e
        .describe_blocking(&read(&dir.join("subject01/normal.png")))
        .unwrap()
        .expect("a face in subject01/normal");
    let b = e
        .describe_blocking(&read(&dir.join("subject01/happy.png")))
        .unwrap()
        .expect("a face in subject01/happy");
    let c = e
        .describe_blocking(&read(&dir.join("subject02/normal.png")))
        .unwrap()
        .expect("a face in subject02/normal");
    let t = e.config().threshold;
    assert!(facereko_vision::similarity_percent(a.embedding.cosine(&b.embedding)) >= t);
    assert!(facereko_vision::similarity_percent(a.embedding.cosine(&c.embedding)) < t);
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
fn a_phone_portrait_stored_sideways_is_turned_upright_by_its_exif_tag() {
    let e = engine();
    let upright = image::load_from_memory(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .to_rgb8();
    // Stored rotated 90° anticlockwise, tagged "rotate 90° clockwise to display" (EXIF orientation 6).
    let sideways = image::imageops::rotate270(&upright);
    let exif = vec![
        0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00,
        0x00, // TIFF header, little-endian, IFD at 8
        0x01, 0x00, // one entry
        0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
        0x00, // Orientation = 6
        0x00, 0x00, 0x00, 0x00, // no next IFD
    ];
    let mut tagged = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut tagged, 90);
    enc.set_exif_metadata(exif).unwrap();
    enc.write_image(
        sideways.as_raw(),
        sideways.width(),
        sideways.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let straight = e
        .describe_blocking(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .unwrap();
    let turned = e
        .describe_blocking(&tagged)
        .unwrap()
        .expect("the tagged photo is turned upright and its face found");
    assert!(straight.embedding.cosine(&turned.embedding) > 0.97);
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn enrolment_finds_a_small_face_in_a_large_photo_that_a_door_frame_would_miss() {
    let e = engine();
    let face = image::load_from_memory(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .to_rgb8();
    // The photo doubled (face ≈ 200 px) on a 2000×1500 background: at the door's 480-pixel detection
    // size the face shrinks to ≈ 48 px, below the ≈ 80 px HOG finds; enrolment searches at 1280.
    let mut big = RgbImage::from_pixel(2000, 1500, image::Rgb([120, 118, 115]));
    let face = image::imageops::resize(&face, 500, 500, image::imageops::FilterType::Triangle);
    image::imageops::replace(&mut big, &face, 750, 500);
    let p = photo(jpeg(&big));
    assert_eq!(e.identify(&p).await.unwrap().face, None);
    let enrolled = e.embed(&p).await.expect("enrolment finds the face");
    let direct = e
        .describe_blocking(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .unwrap();
    assert!(enrolled.embedding.cosine(&direct.embedding) > 0.95);
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
fn describe_all_gives_each_face_its_own_box_and_embedding() {
    let e = engine();
    let gore = image::load_from_memory(&lfw("Al_Gore/01.jpg"))
        .unwrap()
        .to_rgb8();
    let sandler = image::load_from_memory(&lfw("Adam_Sandler/01.jpg"))
        .unwrap()
        .to_rgb8();
    // Two 250×250 portraits side by side; Sandler's a little larger so he ranks first.
    let sandler =
        image::imageops::resize(&sandler, 300, 300, image::imageops::FilterType::Triangle);
    let mut both = RgbImage::from_pixel(600, 320, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut both, &gore, 10, 35);
    image::imageops::replace(&mut both, &sandler, 290, 10);
    let faces = e.describe_all_blocking(&jpeg(&both), 10, true).unwrap();
    assert_eq!((faces.width, faces.height), (600, 320));
    assert_eq!(faces.faces.len(), 2, "{faces:?}");
    let (first, second) = (&faces.faces[0], &faces.faces[1]);
    assert!(
        first.left >= 290,
        "the larger face (right) ranks first: {first:?}"
    );
    assert!(second.left + second.width <= 290, "{second:?}");
    let alone = |rel: &str| e.describe_blocking(&lfw(rel)).unwrap().unwrap().embedding;
    assert!(first.embedding.cosine(&alone("Adam_Sandler/01.jpg")) > 0.95);
    assert!(second.embedding.cosine(&alone("Al_Gore/01.jpg")) > 0.95);
    // At most `max_faces`, but `usable` still counts both.
    let one = e.describe_all_blocking(&jpeg(&both), 1, false).unwrap();
    assert_eq!((one.faces.len(), one.usable), (1, 2));
}
