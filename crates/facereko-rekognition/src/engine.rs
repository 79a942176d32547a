//! The Rekognition face engine (feature `aws`): one `SearchFacesByImage` per look, as the original
//! did, with FaceReko's rule on top — in `card+face` mode the best match must be the card owner's face.
//!
//! The door does not take the answer at its word: every match is checked again against the door's own
//! `face_match_threshold` and the card owner, so an endpoint that ignores `FaceMatchThreshold` or names
//! someone else cannot open the door.
//!
//! `SearchFacesByImage` fails with `InvalidParameterException` when the photo has no face; that is a
//! verdict (no face), not an error. When Rekognition cannot be reached in time (network, timeout,
//! throttling, 5xx) and a fallback engine is configured, the fallback decides and the attempt's
//! engine says so; a refusal (bad key, missing collection) is never papered over: the door denies.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::Image;
use facereko_aws::AwsConfig;
use facereko_domain::{millis, PersonId, Photo};
use facereko_vision::{FaceEngine, FaceFound, Verdict};

use crate::client::CollectionClient;
use crate::{person_of, Error};

/// What one search found.
#[derive(Clone, Debug, PartialEq)]
struct Search {
    /// No face in the photo.
    no_face: bool,
    /// The best-scoring match as answered (not yet checked against the threshold): its
    /// `ExternalImageId`, similarity and the matched face's detector confidence.
    best: Option<(Option<String>, f32, Option<f32>)>,
    /// Detector confidence of the face searched with.
    searched_confidence: Option<f32>,
    ms: u32,
}

/// See the module note.
#[derive(Clone)]
pub struct RekognitionEngine {
    client: CollectionClient,
    collection: String,
    threshold: f32,
    max_faces: i32,
    fallback: Option<Arc<dyn FaceEngine>>,
}

impl std::fmt::Debug for RekognitionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RekognitionEngine")
            .field("collection", &self.collection)
            .field("threshold", &self.threshold)
            .field("max_faces", &self.max_faces)
            .field(
                "fallback",
                &self.fallback.as_ref().map(|e| e.name().to_string()),
            )
            .finish()
    }
}

fn to_vision(e: Error) -> facereko_vision::Error {
    facereko_vision::Error::Engine(e.to_string())
}

impl RekognitionEngine {
    /// The engine for `[aws]`; `fallback` decides when Rekognition is unreachable.
    pub async fn new(
        aws: &AwsConfig,
        fallback: Option<Arc<dyn FaceEngine>>,
    ) -> crate::Result<Self> {
        Ok(Self::with_client(
            CollectionClient::new(aws).await?,
            aws,
            fallback,
        ))
    }

    pub fn with_client(
        client: CollectionClient,
        aws: &AwsConfig,
        fallback: Option<Arc<dyn FaceEngine>>,
    ) -> Self {
        Self {
            client,
            collection: aws.collection.clone(),
            threshold: aws.face_match_threshold,
            max_faces: aws.max_faces.min(4096) as i32,
            fallback,
        }
    }

    async fn search(&self, photo: &Photo) -> crate::Result<Search> {
        let started = Instant::now();
        let sdk = self.client.sdk();
        let result = self
            .client
            .bounded(
                "SearchFacesByImage",
                sdk.search_faces_by_image()
                    .collection_id(&self.collection)
                    .image(
                        Image::builder()
                            .bytes(Blob::new(photo.bytes.clone()))
                            .build(),
                    )
                    .face_match_threshold(self.threshold)
                    .max_faces(self.max_faces)
                    .send(),
            )
            .await;
        let ms = millis(started.elapsed());
        match result {
            Ok(out) => {
                let best = out
                    .face_matches()
                    .iter()
                    .filter_map(|m| Some((m, m.similarity()?)))
                    // Not a score on Rekognition's 0–100 scale: not a match.
                    .filter(|(_, s)| s.is_finite() && (0.0..=100.0).contains(s))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(m, s)| {
                        let face = m.face();
                        (
                            face.and_then(|f| f.external_image_id()).map(str::to_string),
                            s,
                            face.and_then(|f| f.confidence()),
                        )
                    });
                Ok(Search {
                    no_face: false,
                    best,
                    searched_confidence: out.searched_face_confidence(),
                    ms,
                })
            }
            Err(Error::Service { code, .. }) if code == "InvalidParameterException" => Ok(Search {
                no_face: true,
                best: None,
                searched_confidence: None,
                ms,
            }),
            Err(Error::Service { code, message, .. }) if code == "ResourceNotFoundException" => {
                Err(Error::Service {
                    operation: "SearchFacesByImage",
                    code,
                    message: format!(
                        "{message} (create it with `facereko collection create {}`)",
                        self.collection
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The verdict for one search; `owner` is the card owner in `card+face` mode.
    fn verdict(&self, s: Search, owner: Option<PersonId>) -> Verdict {
        let mut v = Verdict {
            engine: "rekognition".into(),
            detect_ms: Some(s.ms),
            ..Verdict::default()
        };
        if s.no_face {
            return v;
        }
        // Rekognition's `Face.Confidence` of the matched face (what the original stored), else the
        // searched face's own.
        let confidence = s.best.as_ref().and_then(|b| b.2).or(s.searched_confidence);
        v.face = Some(FaceFound {
            confidence,
            width_px: None,
            faces_in_photo: None,
        });
        if let Some((external, similarity, _)) = s.best {
            v.similarity = Some(similarity);
            let person = external.as_deref().and_then(person_of);
            if person.is_none() {
                tracing::warn!(
                    "best match has ExternalImageId {external:?}, which names no FaceReko person: \
                     run `facereko collection sync`"
                );
            }
            v.best_candidate = person;
            // Whatever threshold the endpoint applied, the door applies its own.
            let passed = similarity >= self.threshold;
            if !passed {
                tracing::info!(
                    similarity,
                    threshold = self.threshold,
                    "the best match is below the door's face_match_threshold: a mismatch"
                );
            }
            v.matched = match owner {
                Some(o) => person.filter(|p| passed && *p == o),
                None => person.filter(|_| passed),
            };
        }
        v
    }

    /// Runs `local` instead when Rekognition is unreachable and a fallback is configured.
    async fn decide<F>(
        &self,
        photo: &Photo,
        owner: Option<PersonId>,
        local: F,
    ) -> facereko_vision::Result<Verdict>
    where
        F: for<'a> FnOnce(
            &'a dyn FaceEngine,
            &'a Photo,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = facereko_vision::Result<Verdict>> + Send + 'a>,
        >,
    {
        match self.search(photo).await {
            Ok(s) => Ok(self.verdict(s, owner)),
            Err(Error::Unreachable { reason, .. }) => match &self.fallback {
                Some(fallback) => {
                    tracing::warn!(
                        "rekognition unreachable ({reason}): the {} engine decides",
                        fallback.name()
                    );
                    let mut v = local(fallback.as_ref(), photo).await?;
                    v.engine =
                        format!("{} (fallback: rekognition unreachable: {reason})", v.engine);
                    Ok(v)
                }
                None => Err(facereko_vision::Error::Engine(format!(
                    "rekognition unreachable: {reason}"
                ))),
            },
            Err(e) => Err(to_vision(e)),
        }
    }
}

#[async_trait]
impl FaceEngine for RekognitionEngine {
    fn name(&self) -> &str {
        "rekognition"
    }

    async fn verify(&self, photo: &Photo, person: PersonId) -> facereko_vision::Result<Verdict> {
        self.decide(photo, Some(person), |e, p| Box::pin(e.verify(p, person)))
            .await
    }

    async fn identify(&self, photo: &Photo) -> facereko_vision::Result<Verdict> {
        self.decide(photo, None, |e, p| Box::pin(e.identify(p)))
            .await
    }

    /// One `SearchFacesByImage` per tap, as the original: every call is billed.
    fn one_photo_per_look(&self) -> bool {
        true
    }
}
