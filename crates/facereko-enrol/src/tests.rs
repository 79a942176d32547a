//! The enrolment pipeline on a real SQLite store. Tests that embed faces need the installed models
//! (`FACEREKO_MODELS_DIR`) and the shared photos (`FACEREKO_FACES_DIR`); `scripts/test.sh` sets both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use facereko_vision::{FaceEngine, LocalEngine, VisionConfig};
use image::ImageEncoder;

use super::*;

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("facereko.db").display());
    (Store::open(&url, dir.path()).await.unwrap(), dir)
}

fn env_dir(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} must be set")))
}

fn engine() -> LocalEngine {
    LocalEngine::load(&VisionConfig::default(), &env_dir("FACEREKO_MODELS_DIR")).unwrap()
}

fn lfw(rel: &str) -> Photo {
    let path = env_dir("FACEREKO_FACES_DIR").join("lfw-dev").join(rel);
    Photo::from_bytes(std::fs::read(path).unwrap()).unwrap()
}

/// Remembers what it indexed; fails while `broken`.
#[derive(Debug, Default)]
struct Recorder {
    indexed: Mutex<Vec<(PersonId, i64)>>,
    forgotten: Mutex<Vec<i64>>,
    broken: AtomicBool,
}

#[async_trait::async_trait]
impl FaceIndexer for Recorder {
    fn collection(&self) -> &str {
        "home"
    }
    async fn index(&self, person: PersonId, face_id: i64, _: &Photo) -> Result<(), IndexError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err("the collection is unreachable".into());
        }
        self.indexed.lock().unwrap().push((person, face_id));
        Ok(())
    }
    async fn forget(&self, face_id: i64) -> Result<(), IndexError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err("the collection is unreachable".into());
        }
        self.forgotten.lock().unwrap().push(face_id);
        Ok(())
    }
}

#[tokio::test]
async fn without_models_an_enrolment_names_the_install_command_and_writes_nothing() {
    let (store, _dir) = store().await;
    let ada = store.add_person("Ada").await.unwrap();
    let svc = FaceEnrolment::new(store.clone(), None, None);
    let photo = Photo::from_bytes(b"\xFF\xD8\xFF\xE0 not really".to_vec()).unwrap();
    let err = svc.enrol(ada, &photo).await.unwrap_err();
    assert!(matches!(err, Error::NoModels), "{err}");
    assert!(err.to_string().contains("models install"), "{err}");
    assert!(store.faces(None).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
async fn an_enrolment_is_stored_with_its_model_then_indexed() {
    let (store, _dir) = store().await;
    let aaron = store.add_person("Aaron").await.unwrap();
    let ix = Arc::new(Recorder::default());
    let e = engine();
    let svc = FaceEnrolment::new(store.clone(), Some(e.clone()), Some(ix.clone()));

    let done = svc
        .enrol(aaron, &lfw("Aaron_Peirsol/01.jpg"))
        .await
        .unwrap();
    let faces = store.faces(Some(aaron)).await.unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].id, done.face_id);
    assert_eq!(faces[0].model_id, e.model_id());
    assert!(
        faces[0].photo.is_some(),
        "the photo is kept for re-embedding"
    );
    assert_eq!(*ix.indexed.lock().unwrap(), vec![(aaron, done.face_id)]);

    // The collection is down: the face is still enrolled here, and the error says so.
    ix.broken.store(true, Ordering::SeqCst);
    let err = svc
        .enrol(aaron, &lfw("Aaron_Peirsol/02.jpg"))
        .await
        .unwrap_err();
    let Error::NotIndexed { face_id, .. } = &err else {
        panic!("{err}")
    };
    assert!(err.to_string().contains("collection sync"), "{err}");
    assert_eq!(store.faces(Some(aaron)).await.unwrap().len(), 2);
    let err = svc.delete(*face_id).await.unwrap_err();
    assert!(matches!(err, Error::NotForgotten { .. }), "{err}");
    assert_eq!(store.faces(Some(aaron)).await.unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
async fn a_photo_without_one_face_writes_nothing() {
    let (store, _dir) = store().await;
    let ada = store.add_person("Ada").await.unwrap();
    let ix = Arc::new(Recorder::default());
    let svc = FaceEnrolment::new(store.clone(), Some(engine()), Some(ix.clone()));
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            &[128u8; 320 * 240 * 3],
            320,
            240,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let blank = Photo::from_bytes(png).unwrap();
    let err = svc.enrol(ada, &blank).await.unwrap_err();
    assert!(matches!(err, Error::NoFace { .. }), "{err}");
    assert!(store.faces(None).await.unwrap().is_empty());
    assert!(ix.indexed.lock().unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
async fn reembed_replaces_the_faces_of_another_model_from_their_photos() {
    let (store, _dir) = store().await;
    let aaron = store.add_person("Aaron").await.unwrap();
    let photo = lfw("Aaron_Peirsol/01.jpg");
    let old = store
        .add_face(aaron, &[0.5; 128], "an-older-model", Some(&photo))
        .await
        .unwrap();
    let orphan = store
        .add_face(aaron, &[0.5; 128], "an-older-model", None)
        .await
        .unwrap();
    let e = engine();
    let svc = FaceEnrolment::new(store.clone(), Some(e.clone()), None);
    let mut steps = Vec::new();
    let report = svc
        .reembed(|s| steps.push((s.face.id, s.result.is_ok())))
        .await
        .unwrap();
    assert_eq!(
        report,
        ReembedReport {
            total: 2,
            todo: 2,
            done: 1
        }
    );
    assert_eq!(steps, vec![(old, true), (orphan, false)]);
    let faces = store.faces(Some(aaron)).await.unwrap();
    let models: Vec<_> = faces.iter().map(|f| (f.id, f.model_id.as_str())).collect();
    assert!(!models.iter().any(|(id, _)| *id == old), "{models:?}");
    assert!(models.contains(&(orphan, "an-older-model")), "{models:?}");
    assert!(models.iter().any(|(_, m)| *m == e.model_id()), "{models:?}");
    // Nothing left to do the second time.
    let again = svc.reembed(|_| {}).await.unwrap();
    assert_eq!(again.done, 0);
    assert_eq!(
        again.todo, 1,
        "the face without a photo stays to be enrolled again"
    );
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
async fn a_face_enrolled_after_start_is_in_the_very_next_decision() {
    let (store, _dir) = store().await;
    let aaron = store.add_person("Aaron").await.unwrap();
    let e = engine();
    let sync = GallerySync::start(store.clone(), e.clone()).await.unwrap();
    let door = FreshGallery::new(Arc::new(e.clone()), sync);
    let probe = lfw("Aaron_Peirsol/02.jpg");
    let before = door.verify(&probe, aaron).await.unwrap();
    assert_eq!(before.matched, None, "{before:?}");
    // Enrolled through the service (as the web app or another door would), with no reload asked for.
    FaceEnrolment::new(store.clone(), Some(e.clone()), None)
        .enrol(aaron, &lfw("Aaron_Peirsol/01.jpg"))
        .await
        .unwrap();
    let after = door.verify(&probe, aaron).await.unwrap();
    assert_eq!(after.matched, Some(aaron), "{after:?}");
}

#[tokio::test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
async fn a_new_face_is_compared_with_everyone_elses_but_not_its_owners() {
    let (store, _dir) = store().await;
    let aaron = store.add_person("Aaron").await.unwrap();
    let sorkin = store.add_person("Sorkin").await.unwrap();
    let svc = FaceEnrolment::new(store.clone(), Some(engine()), None);
    svc.enrol(aaron, &lfw("Aaron_Peirsol/01.jpg"))
        .await
        .unwrap();
    // Another photo of Aaron, enrolled for someone else, looks like Aaron.
    let again = svc.embed(&lfw("Aaron_Peirsol/02.jpg")).await.unwrap();
    let like = svc
        .resembles_other(sorkin, &again)
        .await
        .unwrap()
        .expect("Aaron's second photo is Aaron");
    assert_eq!(like.person, aaron);
    assert_eq!(like.name, "Aaron");
    assert!(like.similarity >= like.threshold, "{like:?}");
    // For Aaron himself it is no one else's face; nor is a stranger's face anyone's.
    assert_eq!(svc.resembles_other(aaron, &again).await.unwrap(), None);
    let stranger = svc.embed(&lfw("Aaron_Sorkin/01.jpg")).await.unwrap();
    assert_eq!(svc.resembles_other(sorkin, &stranger).await.unwrap(), None);
}
