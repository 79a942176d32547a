//! The endpoint's face collections: one JSON file per collection in a folder of the data directory
//! (`<data_dir>/rekognition/<CollectionId>.json`), written whole to a temporary file, synced and renamed
//! over the old one, so a crash or power cut leaves either the old or the new collection, never half.
//!
//! Collections are small (a building's people, a few faces each: ~1 KB per face), so keeping each in
//! memory once loaded and rewriting it on change is simpler and safer than a database of its own.
//! Every operation runs on tokio's blocking pool under one lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use facereko_vision::Embedding;
use serde::{Deserialize, Serialize};

use crate::protocol::{ApiError, BoundingBox};

/// One indexed face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredFace {
    pub face_id: String,
    pub image_id: String,
    pub external_image_id: Option<String>,
    pub bounding_box: BoundingBox,
    pub confidence: Option<f32>,
    /// Kept on disk as base64 of little-endian `f32`s; decoded once, when the collection is loaded.
    #[serde(with = "embedding_base64")]
    pub embedding: Embedding,
    pub indexed_at: DateTime<Utc>,
}

mod embedding_base64 {
    use base64::Engine as _;
    use facereko_vision::Embedding;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Embedding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(e.to_le_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Embedding, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(D::Error::custom)?;
        Embedding::from_le_bytes(&bytes).map_err(D::Error::custom)
    }
}

/// A collection as kept on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    pub collection_id: String,
    pub created: DateTime<Utc>,
    /// The model every face was indexed with.
    pub model: String,
    /// Sorted by face id (pages of `ListFaces` follow this order).
    pub faces: Vec<StoredFace>,
}

/// All collections of one endpoint (see the module note).
#[derive(Clone, Debug)]
pub struct Collections {
    dir: PathBuf,
    cache: Arc<Mutex<HashMap<String, Collection>>>,
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    tracing::error!("rekognition endpoint: {what} {}: {e}", path.display());
    ApiError::internal(format!("could not {what} the collection"))
}

fn no_such(id: &str) -> ApiError {
    ApiError::not_found(format!("The collection id: {id} does not exist"))
}

impl Collections {
    /// Collections in `dir` (created when missing).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            cache: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Runs `f` on the blocking pool with the collections locked.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Locked<'_>) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut cache = this.cache.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut Locked {
                dir: &this.dir,
                this: &this,
                cache: &mut cache,
            })
        })
        .await
        .map_err(|e| ApiError::internal(format!("collection task failed: {e}")))?
    }
}

/// The collections while locked.
#[derive(Debug)]
pub struct Locked<'a> {
    dir: &'a Path,
    this: &'a Collections,
    cache: &'a mut HashMap<String, Collection>,
}

impl Locked<'_> {
    /// Every collection id, sorted.
    pub fn ids(&self) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let entries = std::fs::read_dir(self.dir).map_err(|e| io_error("list", self.dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(id) = name.strip_suffix(".json") {
                if facereko_aws::valid_collection_id(id) {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The collection `id`, loaded once.
    pub fn get(&mut self, id: &str) -> Result<&mut Collection, ApiError> {
        if !facereko_aws::valid_collection_id(id) {
            return Err(ApiError::invalid(format!(
                "CollectionId {id:?} must match [a-zA-Z0-9_.\\-]+ (1–255 characters)"
            )));
        }
        if !self.cache.contains_key(id) {
            let path = self.this.path(id);
            let text = match std::fs::read(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_such(id)),
                Err(e) => return Err(io_error("read", &path, e)),
            };
            let c: Collection = serde_json::from_slice(&text).map_err(|e| {
                tracing::error!("rekognition endpoint: {} is damaged: {e}", path.display());
                ApiError::internal(format!("collection {id} is damaged on disk"))
            })?;
            self.cache.insert(id.to_string(), c);
        }
        Ok(self.cache.get_mut(id).expect("inserted above"))
    }

    /// Creates an empty collection.
    pub fn create(&mut self, id: &str, model: &str) -> Result<&Collection, ApiError> {
        match self.get(id) {
            Ok(_) => {
                return Err(ApiError::new(
                    400,
                    "ResourceAlreadyExistsException",
                    format!("The collection id: {id} already exists"),
                ))
            }
            Err(e) if e.code == "ResourceNotFoundException" => {}
            Err(e) => return Err(e),
        }
        let c = Collection {
            collection_id: id.to_string(),
            created: Utc::now(),
            model: model.to_string(),
            faces: Vec::new(),
        };
        self.write(&c)?;
        self.cache.insert(id.to_string(), c);
        Ok(&self.cache[id])
    }

    /// Deletes a collection and its faces.
    pub fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        self.get(id)?;
        let path = self.this.path(id);
        std::fs::remove_file(&path).map_err(|e| io_error("delete", &path, e))?;
        self.cache.remove(id);
        Ok(())
    }

    /// Applies `change` to a copy of collection `id` and writes it; memory takes the change only once
    /// the disk holds it, so a failed change or write leaves the collection as it was.
    pub fn update<R>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Collection) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut c = self.get(id)?.clone();
        let r = change(&mut c)?;
        c.faces.sort_by(|a, b| a.face_id.cmp(&b.face_id));
        self.write(&c)?;
        self.cache.insert(id.to_string(), c);
        Ok(r)
    }

    fn write(&self, c: &Collection) -> Result<(), ApiError> {
        let path = self.this.path(&c.collection_id);
        facereko_files::replace_file(&path, 0o600, |f| {
            serde_json::to_writer(&mut *f, c).map_err(std::io::Error::from)
        })
        .map_err(|e| io_error("write", &path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(id: &str) -> StoredFace {
        StoredFace {
            face_id: id.into(),
            image_id: "i".into(),
            external_image_id: Some("17".into()),
            bounding_box: BoundingBox {
                width: 0.5,
                height: 0.5,
                left: 0.1,
                top: 0.1,
            },
            confidence: None,
            embedding: crate::describe::sim::embedding_of([1, 0, 0]),
            indexed_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn collections_survive_a_restart_and_refuse_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collections::open(dir.path()).unwrap();
        c.with(|l| l.create("home", "m").map(|_| ())).await.unwrap();
        let e = c
            .with(|l| l.create("home", "m").map(|_| ()))
            .await
            .unwrap_err();
        assert_eq!(e.code, "ResourceAlreadyExistsException");
        c.with(|l| {
            l.update("home", |c| {
                c.faces.push(face("b"));
                Ok(())
            })
        })
        .await
        .unwrap();
        c.with(|l| {
            l.update("home", |c| {
                c.faces.push(face("a"));
                Ok(())
            })
        })
        .await
        .unwrap();

        let again = Collections::open(dir.path()).unwrap();
        let (ids, faces) = again
            .with(|l| {
                let ids = l.ids()?;
                let faces: Vec<String> = l
                    .get("home")?
                    .faces
                    .iter()
                    .map(|f| f.face_id.clone())
                    .collect();
                Ok((ids, faces))
            })
            .await
            .unwrap();
        assert_eq!(ids, vec!["home".to_string()]);
        assert_eq!(faces, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            again
                .with(|l| Ok(l.get("home")?.faces[0].embedding.clone()))
                .await
                .unwrap(),
            crate::describe::sim::embedding_of([1, 0, 0])
        );
        again.with(|l| l.delete("home")).await.unwrap();
        let e = again.with(|l| l.get("home").map(|_| ())).await.unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_failed_change_leaves_the_collection_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collections::open(dir.path()).unwrap();
        c.with(|l| l.create("home", "m").map(|_| ())).await.unwrap();
        let e = c
            .with(|l| {
                l.update("home", |c| {
                    c.faces.push(face("x"));
                    Err::<(), _>(ApiError::invalid("refused"))
                })
            })
            .await
            .unwrap_err();
        assert_eq!(e.message, "refused");
        assert!(c.with(|l| Ok(l.get("home")?.faces.len())).await.unwrap() == 0);
    }

    #[tokio::test]
    async fn ids_that_could_leave_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collections::open(dir.path().join("rekognition")).unwrap();
        for id in ["..", "../x", "a/b", ""] {
            let e = c
                .with(move |l| l.create(id, "m").map(|_| ()))
                .await
                .unwrap_err();
            assert_eq!(e.code, "InvalidParameterException", "{id:?}");
        }
    }
}
