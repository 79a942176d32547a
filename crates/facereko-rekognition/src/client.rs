//! Rekognition through the AWS SDK (feature `aws`): the client the engine and the `collection`
//! commands share, and how SDK errors are sorted into "refused" and "unreachable".

use std::time::Duration;

use aws_sdk_rekognition::config::http::HttpResponse;
use aws_sdk_rekognition::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::Image;
use facereko_aws::AwsConfig;

use crate::{Error, Result};

/// Error codes that mean "not now" rather than "no".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalServerError",
    "ServiceUnavailableException",
    "RequestTimeout",
];

/// Sorts an SDK error: network failures, timeouts, throttling and 5xx are [`Error::Unreachable`];
/// everything the service refused is [`Error::Service`] with its code.
pub fn classify<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("Unknown").to_string();
            let message = ctx.err().message().unwrap_or("").to_string();
            if ctx.raw().status().as_u16() >= 500 || TRANSIENT_CODES.contains(&code.as_str()) {
                Error::Unreachable {
                    operation,
                    reason: format!("{code}: {message}"),
                }
            } else {
                Error::Service {
                    operation,
                    code,
                    message,
                }
            }
        }
        SdkError::TimeoutError(_) => Error::Unreachable {
            operation,
            reason: "timed out".into(),
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Error::Unreachable {
            operation,
            reason: DisplayErrorContext(&e).to_string(),
        },
        _ => Error::Service {
            operation,
            code: "ClientError".into(),
            message: DisplayErrorContext(&e).to_string(),
        },
    }
}

/// A face in a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionFace {
    pub face_id: String,
    pub external_image_id: Option<String>,
}

/// Rekognition (or a compatible endpoint) for one AWS configuration.
#[derive(Clone, Debug)]
pub struct CollectionClient {
    client: aws_sdk_rekognition::Client,
    /// The whole time a call may take (the SDK's own timeouts, plus a little for credentials).
    deadline: Duration,
}

impl CollectionClient {
    /// The client for `[aws]` (credentials and region from the config, else the standard chain).
    pub async fn new(aws: &AwsConfig) -> Result<Self> {
        aws.validate().map_err(|e| Error::Config {
            key: "aws".into(),
            reason: e.to_string(),
        })?;
        // A compatible endpoint does not care about the region, but the signature needs one.
        let fallback = aws.rekognition_endpoint_url.as_ref().map(|_| "us-east-1");
        let sdk = facereko_aws::load_with(aws, fallback).await;
        if sdk.region().is_none() {
            return Err(Error::Config {
                key: "aws.region".into(),
                reason: "is not set and no AWS region was found (AWS_REGION, ~/.aws/config)".into(),
            });
        }
        let mut b = aws_sdk_rekognition::config::Builder::from(&sdk);
        if let Some(url) = &aws.rekognition_endpoint_url {
            b = b.endpoint_url(url);
        }
        Ok(Self {
            client: aws_sdk_rekognition::Client::from_conf(b.build()),
            deadline: Duration::from_millis(aws.timeout_ms) + Duration::from_millis(500),
        })
    }

    pub fn sdk(&self) -> &aws_sdk_rekognition::Client {
        &self.client
    }

    /// Runs one call within the deadline, whatever the SDK does.
    pub(crate) async fn bounded<T, E>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(operation, e)),
            Err(_) => Err(Error::Unreachable {
                operation,
                reason: format!("no answer within {} ms", self.deadline.as_millis()),
            }),
        }
    }

    /// Creates a collection; returns its ARN.
    pub async fn create(&self, collection: &str) -> Result<String> {
        let out = self
            .bounded(
                "CreateCollection",
                self.client
                    .create_collection()
                    .collection_id(collection)
                    .send(),
            )
            .await?;
        Ok(out.collection_arn().unwrap_or_default().to_string())
    }

    pub async fn delete(&self, collection: &str) -> Result<()> {
        self.bounded(
            "DeleteCollection",
            self.client
                .delete_collection()
                .collection_id(collection)
                .send(),
        )
        .await?;
        Ok(())
    }

    /// Every collection id with its face model version.
    pub async fn list(&self) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .bounded(
                    "ListCollections",
                    self.client
                        .list_collections()
                        .set_next_token(token.clone())
                        .send(),
                )
                .await?;
            let models = page.face_model_versions();
            for (i, id) in page.collection_ids().iter().enumerate() {
                out.push((id.clone(), models.get(i).cloned()));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Every face of a collection.
    pub async fn faces(&self, collection: &str) -> Result<Vec<CollectionFace>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .bounded(
                    "ListFaces",
                    self.client
                        .list_faces()
                        .collection_id(collection)
                        .max_results(1000)
                        .set_next_token(token.clone())
                        .send(),
                )
                .await?;
            out.extend(page.faces().iter().map(|f| CollectionFace {
                face_id: f.face_id().unwrap_or_default().to_string(),
                external_image_id: f.external_image_id().map(str::to_string),
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Indexes the one (largest) face of `photo` under `external_image_id`; returns its face id, or
    /// `None` when Rekognition found no face to index.
    pub async fn index(
        &self,
        collection: &str,
        photo: &[u8],
        external_image_id: &str,
    ) -> Result<Option<String>> {
        let out = self
            .bounded(
                "IndexFaces",
                self.client
                    .index_faces()
                    .collection_id(collection)
                    .image(Image::builder().bytes(Blob::new(photo.to_vec())).build())
                    .external_image_id(external_image_id)
                    .max_faces(1)
                    .send(),
            )
            .await?;
        Ok(out
            .face_records()
            .first()
            .and_then(|r| r.face())
            .and_then(|f| f.face_id())
            .map(str::to_string))
    }

    /// Deletes faces by id (in chunks of 4096, Rekognition's limit); returns how many were deleted.
    pub async fn delete_faces(&self, collection: &str, face_ids: &[String]) -> Result<usize> {
        let mut deleted = 0;
        for chunk in face_ids.chunks(4096) {
            let out = self
                .bounded(
                    "DeleteFaces",
                    self.client
                        .delete_faces()
                        .collection_id(collection)
                        .set_face_ids(Some(chunk.to_vec()))
                        .send(),
                )
                .await?;
            deleted += out.deleted_faces().len();
        }
        Ok(deleted)
    }
}
