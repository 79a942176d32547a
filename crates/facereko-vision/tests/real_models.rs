//! The local engine, with each pipeline (ONNX and dlib), on the real models and real photos.
//!
//! Needs `FACEREKO_MODELS_DIR` (the installed models) and `FACEREKO_FACES_DIR` (the shared face photos);
//! `.ci/run` sets both and runs these with `--include-ignored`. Each shared test runs once per pipeline
//! (`<test>::onnx`, `<test>::dlib`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facereko_domain::{PersonId, Photo};
use facereko_vision::{Error, FaceEngine, Gallery, LocalEngine, LocalEngineKind, VisionConfig};
use image::{ImageEncoder, RgbImage};

use LocalEngineKind::{Dlib, Onnx};

/// Runs an async test body once per pipeline.
macro_rules! per_engine {
    ($name:ident, $why:literal) => {
        mod $name {
            #[tokio::test]
            #[ignore = $why]
            async fn onnx() {
                super::$name(super::Onnx).await
            }

            #[tokio::test]
            #[ignore = $why]
            async fn dlib() {
                super::$name(super::Dlib).await
            }
        }
    };
}

fn env_dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} must be set for the real-model tests (CI's .ci/run sets it)")
    }))
}

fn engine(kind: LocalEngineKind) -> &'static LocalEngine {
    static ONNX: OnceLock<LocalEngine> = OnceLock::new();
    static DLIB: OnceLock<LocalEngine> = OnceLock::new();
    let cell = match kind {
        Onnx => &ONNX,
        Dlib => &DLIB,
    };
    cell.get_or_init(|| {
        let config = VisionConfig {
            local_engine: kind,
            ..VisionConfig::default()
        };
        LocalEngine::load(&config, &env_dir("FACEREKO_MODELS_DIR")).expect("loading the models")
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

per_engine!(
    same_person_pairs_score_above_the_threshold_and_others_below,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn same_person_pairs_score_above_the_threshold_and_others_below(kind: LocalEngineKind) {
    let e = engine(kind);
    let threshold = e.threshold();
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

per_engine!(
    verify_and_identify_against_an_enrolled_gallery,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn verify_and_identify_against_an_enrolled_gallery(kind: LocalEngineKind) {
    let e = engine(kind).clone();
    let mut rows = Vec::new();
    for (i, (id, first, _)) in SAMPLE.iter().enumerate() {
        let enrolled = e.embed(&photo(lfw(&sample_path(id, first)))).await.unwrap();
        // Enrolment accepted exactly one usable face; BlazeFace may also see a small face in the
        // background of a news photo, which the gate leaves out.
        assert!(enrolled.face.faces_in_photo >= Some(1), "{id}");
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
    assert!(v.similarity.unwrap() < e.threshold());
    let v = e.identify(&probe).await.unwrap();
    assert_eq!(v.matched, Some(PersonId(3)), "{v:?}");
    assert_eq!(v.engine, "local");

    // Someone nobody enrolled is "unknown".
    let stranger = photo(lfw("Alejandro_Toledo/01.jpg"));
    let v = e.identify(&stranger).await.unwrap();
    assert!(v.face.is_some());
    assert_eq!(v.matched, None, "{v:?}");
}

per_engine!(
    a_photo_without_a_face_has_no_face,
    "needs FACEREKO_MODELS_DIR (set by .ci/run)"
);
async fn a_photo_without_a_face_has_no_face(kind: LocalEngineKind) {
    let e = engine(kind);
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

per_engine!(
    enrolment_refuses_a_photo_of_two_people_saying_how_many,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn enrolment_refuses_a_photo_of_two_people_saying_how_many(kind: LocalEngineKind) {
    let e = engine(kind);
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

per_engine!(
    hostile_images_are_clear_errors,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn hostile_images_are_clear_errors(kind: LocalEngineKind) {
    let e = engine(kind);
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

per_engine!(
    frontal_grey_photos_of_one_person_match,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn frontal_grey_photos_of_one_person_match(kind: LocalEngineKind) {
    let e = engine(kind);
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
    let t = e.threshold();
    assert!(facereko_vision::similarity_percent(a.embedding.cosine(&b.embedding)) >= t);
    assert!(facereko_vision::similarity_percent(a.embedding.cosine(&c.embedding)) < t);
}

per_engine!(
    a_phone_portrait_stored_sideways_is_turned_upright_by_its_exif_tag,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn a_phone_portrait_stored_sideways_is_turned_upright_by_its_exif_tag(kind: LocalEngineKind) {
    let e = engine(kind);
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
    // dlib only: its door frames are searched at `detect_max_side`; BlazeFace's 256-pixel variant
    // looks at every frame whole (see `onnx_finds_a_small_face_in_a_door_frame`).
    let e = engine(Dlib);
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

per_engine!(
    describe_all_gives_each_face_its_own_box_and_embedding,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn describe_all_gives_each_face_its_own_box_and_embedding(kind: LocalEngineKind) {
    let e = engine(kind);
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
    let (sandler, gore) = (alone("Adam_Sandler/01.jpg"), alone("Al_Gore/01.jpg"));
    // Each box's embedding is that person's: well above the threshold with their own photo (the two
    // crops differ in scale, so the embeddings are not identical), below it with the other's.
    let t = e.threshold() / 100.0;
    let margin = (1.0 + t) / 2.0;
    for (face, own, other) in [(first, &sandler, &gore), (second, &gore, &sandler)] {
        let (c_own, c_other) = (face.embedding.cosine(own), face.embedding.cosine(other));
        assert!(
            c_own > margin && c_other < t,
            "own {c_own}, other {c_other}"
        );
    }
    // At most `max_faces`, but `usable` still counts both.
    let one = e.describe_all_blocking(&jpeg(&both), 1, false).unwrap();
    assert_eq!((one.faces.len(), one.usable), (1, 2));
}

/// A 640×480 camera-sized frame with `rel`'s photo scaled to `side` pixels, centred.
fn frame_with(rel: &str, side: u32) -> RgbImage {
    let face = image::load_from_memory(&lfw(rel)).unwrap().to_rgb8();
    let face = image::imageops::resize(&face, side, side, image::imageops::FilterType::Triangle);
    let mut frame = RgbImage::from_pixel(640, 480, image::Rgb([96, 104, 110]));
    image::imageops::replace(
        &mut frame,
        &face,
        (320 - side / 2) as i64,
        (240 - side / 2) as i64,
    );
    frame
}

per_engine!(
    observations_carry_box_keypoints_quality_and_model,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn observations_carry_box_keypoints_quality_and_model(kind: LocalEngineKind) {
    let e = engine(kind);
    let frame = frame_with("Al_Gore/01.jpg", 250);
    let obs = e.observe_image(&frame, 3).unwrap();
    assert_eq!(obs.len(), 1, "{obs:?}");
    let o = &obs[0];
    assert_eq!(o.model_id, e.model_id());
    assert_eq!(o.embedding.dim(), kind.embedding_dim());
    assert_eq!(o.keypoints.len(), if kind == Onnx { 6 } else { 5 });
    // The face sits in the middle of the frame; its keypoints lie within its box, give or take.
    let c = o.rect.centre();
    assert!(
        (c.x - 320.0).abs() < 40.0 && (c.y - 240.0).abs() < 60.0,
        "{:?}",
        o.rect
    );
    for p in &o.keypoints {
        assert!(
            p.x > o.rect.left - 30.0 && p.x < o.rect.right + 30.0,
            "{p:?} {:?}",
            o.rect
        );
    }
    assert!(
        o.eyes[0].x < o.eyes[1].x,
        "eyes left to right: {:?}",
        o.eyes
    );
    // Al Gore's head is turned a little in this photo: pose well above 0, below 1.
    let q = o.quality;
    assert!(
        q.pose > 0.3 && q.size > 0.5 && q.exposure > 0.5 && q.sharpness > 0.2,
        "{q:?}"
    );
    // The same frame blurred scores lower on sharpness, and so overall.
    let blurred = image::imageops::blur(&frame, 4.0);
    let b = &e.observe_image(&blurred, 1).unwrap()[0];
    assert!(
        b.quality.sharpness < q.sharpness,
        "{:?} vs {q:?}",
        b.quality
    );
    // The probe path and the frame path describe the same face the same way.
    let probe = e.describe_image(&frame).unwrap().unwrap();
    assert!(probe.embedding.cosine(&o.embedding) > 0.999);
}

per_engine!(
    fused_frames_verify_the_card_owner_and_identify_among_several,
    "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"
);
async fn fused_frames_verify_the_card_owner_and_identify_among_several(kind: LocalEngineKind) {
    let e = engine(kind).clone();
    let mut rows = Vec::new();
    for (i, (id, first, _)) in SAMPLE.iter().enumerate() {
        let enrolled = e.embed(&photo(lfw(&sample_path(id, first)))).await.unwrap();
        rows.push((PersonId(i as i64 + 1), enrolled.embedding.into_vec()));
    }
    e.set_gallery(Gallery::new(rows).unwrap());
    // Two frames of Alan Greenspan (person 3) the gallery has not seen.
    let mut frames = Vec::new();
    for rel in ["Alan_Greenspan/02.jpg", "Alan_Greenspan/03.jpg"] {
        frames.extend(e.observe(&photo(lfw(rel))).await.unwrap());
    }
    assert_eq!(frames.len(), 2);
    let v = e.verify_fused(&frames, PersonId(3));
    assert_eq!(v.matched, Some(PersonId(3)), "{v:?}");
    assert!(v.face.is_some() && v.similarity.unwrap() >= e.threshold());
    let v = e.verify_fused(&frames, PersonId(1));
    assert_eq!(v.matched, None, "the card owner is someone else: {v:?}");
    let v = e.identify_fused(&frames);
    assert_eq!(
        (v.matched, v.best_candidate),
        (Some(PersonId(3)), Some(PersonId(3)))
    );
    // No frames, or frames of another model only: no face, no match.
    assert_eq!(e.identify_fused(&[]).face, None);
    let mut foreign = frames.clone();
    foreign
        .iter_mut()
        .for_each(|o| o.model_id = "another-model".into());
    assert_eq!(e.verify_fused(&foreign, PersonId(3)).matched, None);
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn onnx_finds_a_small_face_in_a_door_frame() {
    // The photo scaled to 120 px puts a ≈ 50 px face in a 640×480 frame: too small for the 128-pixel
    // BlazeFace (≈ 10 px there) but not for the 256-pixel one.
    let config = VisionConfig {
        local_engine: Onnx,
        min_face_px: 40,
        ..VisionConfig::default()
    };
    let e = LocalEngine::load(&config, &env_dir("FACEREKO_MODELS_DIR")).unwrap();
    let frame = frame_with("Al_Gore/01.jpg", 120);
    let obs = e.observe_image(&frame, 1).unwrap();
    assert_eq!(obs.len(), 1, "no face found in the frame");
    let big = e
        .describe_image(&frame_with("Al_Gore/01.jpg", 250))
        .unwrap()
        .unwrap();
    assert!(
        obs[0].embedding.cosine(&big.embedding) > 0.6,
        "{}",
        obs[0].embedding.cosine(&big.embedding)
    );
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by .ci/run)"]
async fn onnx_finds_the_face_in_a_tight_grey_crop() {
    // ORL photos are 92×112 crops of the face alone, grey.
    let e = engine(Onnx);
    let dir = env_dir("FACEREKO_FACES_DIR").join("orl");
    let mut first = None;
    for entry in std::fs::read_dir(dir.join("s01")).unwrap().take(3) {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let p = e
            .describe_blocking(&bytes)
            .unwrap()
            .expect("a face in the ORL crop");
        let first = first.get_or_insert(p.embedding.clone());
        assert!(facereko_vision::similarity_percent(first.cosine(&p.embedding)) >= e.threshold());
    }
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR (set by .ci/run)"]
async fn a_missing_onnx_model_names_the_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    let config = VisionConfig {
        local_engine: Onnx,
        ..VisionConfig::default()
    };
    let e = LocalEngine::load(&config, tmp.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("facereko models install --engine onnx"), "{e}");
    // The real folder loads.
    LocalEngine::load(&config, &env_dir("FACEREKO_MODELS_DIR")).unwrap();
}
