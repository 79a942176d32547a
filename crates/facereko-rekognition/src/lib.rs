//! FaceReko and AWS Rekognition, both ways.
//!
//! - [`endpoint`]: a **Rekognition-compatible endpoint** answered by the local engine, so the original's
//!   Python scripts (boto3 with `endpoint_url`) and other AWS-based tools keep working against a door
//!   with no cloud. Off by default, loopback by default, and every request must be SigV4-signed with the
//!   configured access key. Collections live in the data directory ([`collections`]).
//! - With the `aws` feature, `engine::RekognitionEngine`: a [`facereko_vision::FaceEngine`] backed by
//!   Rekognition's `SearchFacesByImage`, and `client::CollectionClient` for the `collection` commands
//!   and for indexing enrolments.
//!
//! The one design decision a newcomer must know: scores cross the boundary on **Rekognition's scale**.
//! The local engine's similarity is remapped ([`describe::rekognition_similarity`]) so its calibrated
//! threshold lands on Rekognition's default of 80; a script written for AWS with `FaceMatchThreshold=85`
//! then means "a little stricter than FaceReko's own threshold" instead of "anyone who looks human".
//! The two halves test each other: the AWS SDK engine is tested against this endpoint.
//!
//! A face's `ExternalImageId` is `<person id>:<face id>` (FaceReko's stable ids): the part before the
//! colon says whose face it is, the whole says which enrolled photo, so `collection sync` can tell which
//! photos a collection lacks.

pub mod collections;
pub mod describe;
pub mod endpoint;
pub mod protocol;

#[cfg(feature = "aws")]
pub mod client;
#[cfg(feature = "aws")]
pub mod engine;

pub use describe::{DescribeError, Describer};
pub use endpoint::{Endpoint, EndpointConfig};

use facereko_domain::PersonId;

/// Errors of the Rekognition crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: `{key}` {reason}")]
    Config { key: String, reason: String },
    /// The Rekognition service (or a compatible endpoint) refused or failed a call.
    #[error("rekognition {operation}: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// Rekognition could not be reached in time (network, timeout, throttling).
    #[error("rekognition {operation} unreachable: {reason}")]
    Unreachable {
        operation: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `ExternalImageId` of an enrolled photo: `<person id>:<face id>`.
pub fn external_image_id(person: PersonId, face_id: i64) -> String {
    format!("{person}:{face_id}")
}

/// Whose face an `ExternalImageId` names: `<person id>` or `<person id>:<face id>`; `None` for ids
/// FaceReko did not write (such as the original's names).
pub fn person_of(external_image_id: &str) -> Option<PersonId> {
    let person = external_image_id
        .split_once(':')
        .map_or(external_image_id, |(p, _)| p);
    person
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(PersonId)
}

/// Which enrolled photo an `ExternalImageId` names, when it names one.
pub fn face_of(external_image_id: &str) -> Option<(PersonId, i64)> {
    let (p, f) = external_image_id.split_once(':')?;
    Some((person_of(p)?, f.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_image_ids_round_trip_and_foreign_ones_name_nobody() {
        let x = external_image_id(PersonId(17), 42);
        assert_eq!(x, "17:42");
        assert!(protocol::valid_external_image_id(&x));
        assert_eq!(person_of(&x), Some(PersonId(17)));
        assert_eq!(face_of(&x), Some((PersonId(17), 42)));
        assert_eq!(person_of("17"), Some(PersonId(17)));
        assert_eq!(face_of("17"), None);
        for foreign in ["Yi_Ming", "", "-3", "0", "17x:1"] {
            assert_eq!(person_of(foreign), None, "{foreign:?}");
        }
    }
}
