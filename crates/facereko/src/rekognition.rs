//! The Rekognition options in the daemon and the CLI: which engine the door decides with, the
//! Rekognition-compatible endpoint, indexing enrolments into the collection, and `facereko collection`.
//! Everything that needs the AWS SDK is behind the `aws` feature; without it the commands say how to
//! get a build that has it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use facereko_enrol::FaceIndexer;
use facereko_rekognition::collections::Collections;
use facereko_rekognition::Endpoint;
use facereko_vision::{EngineKind, FaceEngine, Fallback, LocalEngine};

use crate::config::Config;

/// Indexes enrolled photos into the Rekognition collection, and forgets them there.
/// Whether the local engine must be loaded: it decides, backs Rekognition up, or answers the endpoint.
pub fn needs_local_engine(config: &Config) -> bool {
    let v = &config.vision;
    (config.door.mode.uses_camera() && v.engine == EngineKind::Local)
        || (v.engine == EngineKind::Rekognition && v.fallback == Fallback::Local)
        || config.rekognition_api.enabled
}

/// What the daemon decides and enrols with.
pub struct Engines {
    /// The engine the door decides with (`None` in card mode).
    pub door: Option<Arc<dyn FaceEngine>>,
    /// Indexes enrolments into the collection, when the door decides with Rekognition.
    pub indexer: Option<Arc<dyn FaceIndexer>>,
}

/// The door's engine and the enrolment indexer; with Rekognition both share one client.
pub async fn engines(config: &Config, local: Option<&LocalEngine>) -> Result<Engines> {
    let uses_camera = config.door.mode.uses_camera();
    if config.vision.engine != EngineKind::Rekognition {
        return Ok(Engines {
            door: local
                .filter(|_| uses_camera)
                .map(|e| Arc::new(e.clone()) as Arc<dyn FaceEngine>),
            indexer: None,
        });
    }
    if config.door.mode == facereko_domain::Mode::Face {
        let per_day = 86_400_000 / config.door.face_poll_ms.max(1);
        tracing::warn!(
            "face mode with Rekognition asks AWS about every {} ms while armed \
             (up to {per_day} SearchFacesByImage calls a day, each billed)",
            config.door.face_poll_ms
        );
    }
    rekognition_engines(config, local, uses_camera).await
}

/// The indexer for enrolments from the command line, when the door decides with Rekognition.
pub async fn indexer(config: &Config) -> Result<Option<Arc<dyn FaceIndexer>>> {
    if config.vision.engine != EngineKind::Rekognition {
        return Ok(None);
    }
    Ok(rekognition_engines(config, None, false).await?.indexer)
}

/// One Rekognition client for the indexer and, when `door`, the door's engine.
#[cfg(feature = "aws")]
async fn rekognition_engines(
    config: &Config,
    local: Option<&LocalEngine>,
    door: bool,
) -> Result<Engines> {
    use facereko_rekognition::engine::RekognitionEngine;
    let client = facereko_rekognition::client::CollectionClient::new(&config.aws)
        .await
        .context("setting up the Rekognition client")?;
    let door = if door {
        let fallback = match config.vision.fallback {
            Fallback::Local => Some(Arc::new(
                local
                    .context("vision.fallback = \"local\" needs the face models: run `facereko models install`")?
                    .clone(),
            ) as Arc<dyn FaceEngine>),
            Fallback::None => None,
        };
        Some(Arc::new(RekognitionEngine::with_client(
            client.clone(),
            &config.aws,
            fallback,
        )) as Arc<dyn FaceEngine>)
    } else {
        None
    };
    Ok(Engines {
        door,
        indexer: Some(Arc::new(aws::Indexer {
            client,
            collection: config.aws.collection.clone(),
        })),
    })
}

#[cfg(not(feature = "aws"))]
async fn rekognition_engines(
    _config: &Config,
    _local: Option<&LocalEngine>,
    _door: bool,
) -> Result<Engines> {
    bail!(NOT_BUILT)
}

#[cfg(not(feature = "aws"))]
pub(crate) const NOT_BUILT: &str = "this FaceReko was built without the AWS SDK: build it with \
    `cargo build --release --features aws` to use Rekognition, collections and SNS";

/// The running endpoint.
#[derive(Debug)]
pub struct RunningEndpoint {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEndpoint {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

/// Starts the Rekognition-compatible endpoint when `[rekognition_api]` enables it.
pub async fn start_endpoint(
    config: &Config,
    data_dir: &Path,
    local: Option<&LocalEngine>,
) -> Result<Option<RunningEndpoint>> {
    let api = &config.rekognition_api;
    if !api.enabled {
        return Ok(None);
    }
    let local = local.context(
        "the Rekognition-compatible endpoint is answered by the local engine: run `facereko models install`",
    )?;
    let dir = api
        .dir
        .clone()
        .unwrap_or_else(|| data_dir.join("rekognition"));
    let collections = Collections::open(&dir)
        .with_context(|| format!("the endpoint's collections folder {}", dir.display()))?;
    let key = api.key().context("rekognition_api needs a key")?;
    let endpoint = Endpoint::new(Arc::new(local.clone()), collections, vec![key]);
    let listener = tokio::net::TcpListener::bind(api.bind)
        .await
        .with_context(|| {
            format!(
                "the Rekognition-compatible endpoint cannot listen on {} (rekognition_api.bind)",
                api.bind
            )
        })?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the Rekognition-compatible endpoint listens on {addr}, beyond this machine: requests are \
             signed, but not encrypted; put it behind TLS"
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(facereko_rekognition::endpoint::serve(
        listener,
        endpoint,
        async {
            let _ = stopped.await;
        },
    ));
    Ok(Some(RunningEndpoint { addr, stop, task }))
}

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a Rekognition collection (the original `add_collection.py -n home`).
    Create {
        /// Default: `aws.collection`.
        name: Option<String>,
    },
    /// Delete a collection and every face in it.
    Delete {
        name: String,
        /// Really delete it.
        #[arg(long)]
        yes: bool,
    },
    /// List the collections.
    List,
    /// Index every enrolled photo the collection lacks, and delete faces of photos no longer enrolled.
    Sync {
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

#[cfg(not(feature = "aws"))]
pub async fn collection(
    _data_dir: &Path,
    _config_file: Option<&Path>,
    _c: CollectionCommand,
) -> Result<()> {
    bail!(NOT_BUILT)
}

#[cfg(feature = "aws")]
pub use aws::collection;

#[cfg(feature = "aws")]
mod aws {
    use std::collections::{HashMap, HashSet};

    use facereko_domain::{PersonId, Photo};
    use facereko_enrol::IndexError;
    use facereko_rekognition::client::CollectionClient;
    use facereko_rekognition::{external_image_id, face_of};
    use facereko_store::Store;

    use super::*;

    #[derive(Debug)]
    pub struct Indexer {
        pub client: CollectionClient,
        pub collection: String,
    }

    #[async_trait::async_trait]
    impl FaceIndexer for Indexer {
        fn collection(&self) -> &str {
            &self.collection
        }

        async fn index(
            &self,
            person: PersonId,
            face_id: i64,
            photo: &Photo,
        ) -> Result<(), IndexError> {
            let x = external_image_id(person, face_id);
            match self
                .client
                .index(&self.collection, &photo.bytes, &x)
                .await?
            {
                Some(_) => Ok(()),
                None => Err("Rekognition found no face to index in the photo".into()),
            }
        }

        async fn forget(&self, face_id: i64) -> Result<(), IndexError> {
            let ids: Vec<String> = self
                .client
                .faces(&self.collection)
                .await?
                .into_iter()
                .filter(|f| {
                    f.external_image_id
                        .as_deref()
                        .and_then(face_of)
                        .is_some_and(|(_, f)| f == face_id)
                })
                .map(|f| f.face_id)
                .collect();
            if !ids.is_empty() {
                self.client.delete_faces(&self.collection, &ids).await?;
            }
            Ok(())
        }
    }

    pub async fn collection(
        data_dir: &Path,
        config_file: Option<&Path>,
        c: CollectionCommand,
    ) -> Result<()> {
        let (config, _) = Config::load(config_file, data_dir)?;
        config.aws.validate()?;
        let client = CollectionClient::new(&config.aws).await?;
        match c {
            CollectionCommand::Create { name } => {
                let name = name.unwrap_or_else(|| config.aws.collection.clone());
                let arn = client.create(&name).await?;
                println!("created collection {name} ({arn})");
            }
            CollectionCommand::Delete { name, yes } => {
                if !yes {
                    bail!("deleting collection {name} removes every face in it: add --yes");
                }
                client.delete(&name).await?;
                println!("deleted collection {name}");
            }
            CollectionCommand::List => {
                for (id, model) in client.list().await? {
                    println!("{id}\t{}", model.unwrap_or_default());
                }
            }
            CollectionCommand::Sync { dry_run } => {
                let store = crate::cli::open_store(data_dir, config_file).await?;
                let report = sync(&store, &client, &config.aws.collection, dry_run).await?;
                println!("{report}");
            }
        }
        Ok(())
    }

    /// What `collection sync` did.
    #[derive(Debug, Default)]
    pub struct SyncReport {
        pub collection: String,
        pub indexed: usize,
        pub already: usize,
        pub deleted: usize,
        pub foreign: usize,
        pub refused: Vec<String>,
        pub dry_run: bool,
    }

    impl std::fmt::Display for SyncReport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let would = if self.dry_run { "would be " } else { "" };
            writeln!(
                f,
                "collection {}: {} photos {would}indexed, {} already there, {} faces of deleted enrolments {would}removed",
                self.collection, self.indexed, self.already, self.deleted
            )?;
            if self.foreign > 0 {
                writeln!(
                    f,
                    "  {} faces FaceReko did not index (ExternalImageId not <person id>:<face id>) were left alone",
                    self.foreign
                )?;
            }
            for r in &self.refused {
                writeln!(f, "  not indexed: {r}")?;
            }
            Ok(())
        }
    }

    /// Makes the collection hold exactly the store's enrolled photos (faces written by FaceReko).
    pub async fn sync(
        store: &Store,
        client: &CollectionClient,
        collection: &str,
        dry_run: bool,
    ) -> Result<SyncReport> {
        let mut report = SyncReport {
            collection: collection.to_string(),
            dry_run,
            ..Default::default()
        };
        let enrolled = store.faces(None).await?;
        let known: HashMap<i64, PersonId> = enrolled.iter().map(|f| (f.id, f.person_id)).collect();
        let mut present = HashSet::new();
        let mut stale = Vec::new();
        for f in client.faces(collection).await? {
            let x = f.external_image_id.as_deref().unwrap_or("");
            match face_of(x) {
                Some((person, id)) if known.get(&id) == Some(&person) => {
                    present.insert(id);
                }
                Some(_) => stale.push(f.face_id),
                // Indexed by someone else (the original's names, or a bare person id): not ours to delete.
                None => report.foreign += 1,
            }
        }
        for f in &enrolled {
            if present.contains(&f.id) {
                report.already += 1;
                continue;
            }
            let Some(rel) = &f.photo else {
                report.refused.push(format!(
                    "face {} of person {}: no photo kept",
                    f.id, f.person_id
                ));
                continue;
            };
            if dry_run {
                report.indexed += 1;
                continue;
            }
            let bytes = match store.photo_path(rel).map(std::fs::read) {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    report.refused.push(format!("face {}: {rel}: {e}", f.id));
                    continue;
                }
                Err(e) => {
                    report.refused.push(format!("face {}: {e}", f.id));
                    continue;
                }
            };
            let x = external_image_id(f.person_id, f.id);
            match client.index(collection, &bytes, &x).await? {
                Some(_) => report.indexed += 1,
                None => report
                    .refused
                    .push(format!("face {} ({rel}): Rekognition found no face", f.id)),
            }
        }
        report.deleted = stale.len();
        if !dry_run && !stale.is_empty() {
            client.delete_faces(collection, &stale).await?;
        }
        Ok(report)
    }
}
