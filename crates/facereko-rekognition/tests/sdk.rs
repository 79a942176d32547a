//! The AWS SDK side (feature `aws`) against this crate's own Rekognition-compatible endpoint, so each
//! half checks the other, and against hand-written answers for each error shape. No test reaches AWS.
#![cfg(feature = "aws")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use common::*;
use facereko_aws::AwsConfig;
use facereko_domain::{PersonId, Photo};
use facereko_rekognition::client::CollectionClient;
use facereko_rekognition::describe::sim::png;
use facereko_rekognition::engine::RekognitionEngine;
use facereko_rekognition::{external_image_id, Error};
use facereko_vision::testing::{Script, ScriptedEngine};
use facereko_vision::FaceEngine;

const ANA: [u8; 3] = [10, 0, 0];
const BEN: [u8; 3] = [20, 0, 0];

fn photo(colour: [u8; 3]) -> Photo {
    Photo::from_bytes(png((64, 64), &[(colour, 16, 16, 32, 32)])).unwrap()
}

fn blank() -> Photo {
    Photo::from_bytes(png((64, 64), &[])).unwrap()
}

fn aws(url: &str) -> AwsConfig {
    AwsConfig {
        region: Some("eu-west-1".into()),
        access_key_id: Some(KEY_ID.into()),
        secret_access_key: Some(facereko_domain::Secret::new(SECRET)),
        rekognition_endpoint_url: Some(url.into()),
        timeout_ms: 2000,
        max_attempts: 2,
        ..AwsConfig::default()
    }
}

/// The endpoint on a loopback port; returns its URL.
async fn serve(dir: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ep = endpoint(dir);
    tokio::spawn(facereko_rekognition::endpoint::serve(
        listener,
        ep,
        std::future::pending(),
    ));
    url
}

#[tokio::test]
async fn collection_commands_work_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path()).await;
    let c = CollectionClient::new(&aws(&url)).await.unwrap();
    let arn = c.create("home").await.unwrap();
    assert!(arn.ends_with("collection/home"), "{arn}");
    match c.create("home").await.unwrap_err() {
        Error::Service { code, .. } => assert_eq!(code, "ResourceAlreadyExistsException"),
        other => panic!("{other}"),
    }
    assert_eq!(
        c.list().await.unwrap(),
        vec![("home".to_string(), Some("colour-sim-v1".to_string()))]
    );
    let x = external_image_id(PersonId(1), 7);
    let id = c
        .index("home", &photo(ANA).bytes, &x)
        .await
        .unwrap()
        .expect("a face was indexed");
    assert_eq!(c.index("home", &blank().bytes, "1:8").await.unwrap(), None);
    let faces = c.faces("home").await.unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].face_id, id);
    assert_eq!(faces[0].external_image_id.as_deref(), Some("1:7"));
    assert_eq!(c.delete_faces("home", &[id]).await.unwrap(), 1);
    assert!(c.faces("home").await.unwrap().is_empty());
    c.delete("home").await.unwrap();
    assert!(c.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_engine_grants_only_the_card_owners_face() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path()).await;
    let config = aws(&url);
    let c = CollectionClient::new(&config).await.unwrap();
    c.create("home").await.unwrap();
    c.index("home", &photo(ANA).bytes, "1:1").await.unwrap();
    c.index("home", &photo(BEN).bytes, "2:2").await.unwrap();
    let engine = RekognitionEngine::new(&config, None).await.unwrap();
    assert_eq!(engine.name(), "rekognition");

    // Ana's card, Ana's (look-alike) face: granted, with Rekognition's similarity.
    let v = engine
        .verify(&photo([10, 20, 0]), PersonId(1))
        .await
        .unwrap();
    assert_eq!(v.matched, Some(PersonId(1)));
    assert_eq!(v.engine, "rekognition");
    assert!(v.face.is_some());
    let s = v.similarity.unwrap();
    assert!(s > 85.0 && s < 100.0, "{s}");
    // Ben's card, Ana's face: the best match is not the card owner's.
    let v = engine.verify(&photo(ANA), PersonId(2)).await.unwrap();
    assert_eq!(v.matched, None);
    assert_eq!(v.best_candidate, Some(PersonId(1)));
    assert!(v.face.is_some());
    // A stranger: a face, no match.
    let v = engine
        .verify(&photo([40, 0, 0]), PersonId(1))
        .await
        .unwrap();
    assert_eq!((v.matched, v.similarity), (None, None));
    assert!(v.face.is_some());
    // No face: SearchFacesByImage's InvalidParameterException is a verdict, not an error.
    let v = engine.verify(&blank(), PersonId(1)).await.unwrap();
    assert_eq!(v.face, None);
    // Face mode: whoever it is.
    let v = engine.identify(&photo(BEN)).await.unwrap();
    assert_eq!(v.matched, Some(PersonId(2)));
    assert_eq!(v.similarity, Some(100.0));
}

#[tokio::test]
async fn a_wrong_key_is_an_error_even_with_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path()).await;
    let mut config = aws(&url);
    config.secret_access_key = Some(facereko_domain::Secret::new(
        "a-wrong-secret-a-wrong-secret-0000",
    ));
    let fallback = Arc::new(ScriptedEngine::new());
    fallback.push(Script::Match {
        person: None,
        similarity: 99.0,
    });
    let engine = RekognitionEngine::new(&config, Some(fallback.clone()))
        .await
        .unwrap();
    let e = engine.verify(&photo(ANA), PersonId(1)).await.unwrap_err();
    assert!(e.to_string().contains("InvalidSignatureException"), "{e}");
    assert!(fallback.calls().is_empty(), "a refusal is not an outage");
}

/// A stand-in that answers every request with `status`, `x-amzn-errortype: code` and a JSON error,
/// after `delay`; counts requests.
async fn stand_in(
    status: u16,
    code: &'static str,
    delay: Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            let mut r = (
                StatusCode::from_u16(status).unwrap(),
                serde_json::json!({"__type": code, "Message": format!("{code} from the stand-in")})
                    .to_string(),
            )
                .into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            r.headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(code));
            r
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

async fn engine_at(url: &str, fallback: Option<Arc<ScriptedEngine>>) -> RekognitionEngine {
    let mut config = aws(url);
    config.timeout_ms = 1000;
    RekognitionEngine::new(&config, fallback.map(|f| f as Arc<dyn FaceEngine>))
        .await
        .unwrap()
}

#[tokio::test]
async fn throttling_falls_back_to_the_local_engine_and_says_so() {
    let (url, hits) = stand_in(400, "ThrottlingException", Duration::ZERO).await;
    let fallback = Arc::new(ScriptedEngine::new());
    fallback.push(Script::Match {
        person: None,
        similarity: 97.0,
    });
    let engine = engine_at(&url, Some(fallback.clone())).await;
    let v = engine.verify(&photo(ANA), PersonId(1)).await.unwrap();
    assert_eq!(v.matched, Some(PersonId(1)));
    assert!(
        v.engine
            .starts_with("scripted (fallback: rekognition unreachable: ThrottlingException"),
        "{}",
        v.engine
    );
    assert_eq!(fallback.calls(), vec![Some(PersonId(1))]);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "retried once (max_attempts = 2)"
    );

    // Without a fallback the same outage is an engine error: the door denies.
    let engine = engine_at(&url, None).await;
    let e = engine.verify(&photo(ANA), PersonId(1)).await.unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_in_time() {
    let (url, _) = stand_in(200, "Never", Duration::from_secs(30)).await;
    let fallback = Arc::new(ScriptedEngine::new());
    fallback.push(Script::NoFace);
    let engine = engine_at(&url, Some(fallback.clone())).await;
    let started = Instant::now();
    let v = engine.verify(&photo(ANA), PersonId(1)).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1600),
        "took {took:?} (timeout_ms = 1000)"
    );
    assert!(v.engine.contains("fallback"), "{}", v.engine);
    assert_eq!(v.face, None);
}

#[tokio::test]
async fn access_denied_is_an_error_and_no_face_is_a_verdict() {
    let (url, _) = stand_in(400, "AccessDeniedException", Duration::ZERO).await;
    let fallback = Arc::new(ScriptedEngine::new());
    let engine = engine_at(&url, Some(fallback.clone())).await;
    let e = engine.verify(&photo(ANA), PersonId(1)).await.unwrap_err();
    assert!(e.to_string().contains("AccessDeniedException"), "{e}");
    assert!(fallback.calls().is_empty());

    let (url, _) = stand_in(400, "InvalidParameterException", Duration::ZERO).await;
    let engine = engine_at(&url, None).await;
    let v = engine.identify(&photo(ANA)).await.unwrap();
    assert_eq!((v.face, v.matched), (None, None));

    let (url, _) = stand_in(400, "ResourceNotFoundException", Duration::ZERO).await;
    let engine = engine_at(&url, None).await;
    let e = engine.verify(&photo(ANA), PersonId(1)).await.unwrap_err();
    assert!(
        e.to_string().contains("facereko collection create home"),
        "{e}"
    );
}

/// A stand-in that answers every `SearchFacesByImage` with `matches` (`ExternalImageId`, similarity),
/// whatever threshold was asked for: an endpoint the door must not take at its word.
async fn answering(matches: &[(&str, f32)]) -> String {
    let body = serde_json::json!({
        "SearchedFaceBoundingBox": {"Width": 0.5, "Height": 0.5, "Left": 0.25, "Top": 0.25},
        "SearchedFaceConfidence": 99.9,
        "FaceMatches": matches.iter().enumerate().map(|(i, (x, s))| serde_json::json!({
            "Similarity": s,
            "Face": {"FaceId": format!("00000000-0000-0000-0000-00000000000{i}"),
                     "ExternalImageId": x, "Confidence": 99.5},
        })).collect::<Vec<_>>(),
        "FaceModelVersion": "7.0",
    })
    .to_string();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            r
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Regression: the door took Rekognition's matches as they came, so an endpoint that ignored
/// `FaceMatchThreshold` (or answered for someone else) decided who got in.
#[tokio::test]
async fn the_door_rechecks_every_match_against_its_own_threshold_and_the_card_owner() {
    let owner = PersonId(1);
    // Below the door's threshold (85): a mismatch, whoever it names; the score is still recorded.
    let engine = engine_at(&answering(&[("1:1", 50.0)]).await, None).await;
    let v = engine.verify(&photo(ANA), owner).await.unwrap();
    assert_eq!(v.matched, None, "50 % is below the door's 85 %");
    assert_eq!(v.similarity, Some(50.0));
    assert!(v.face.is_some());
    let v = engine.identify(&photo(ANA)).await.unwrap();
    assert_eq!(v.matched, None, "face mode re-checks the threshold too");

    // A similarity outside 0–100 is not a score.
    let engine = engine_at(&answering(&[("1:1", 250.0)]).await, None).await;
    assert_eq!(
        engine.verify(&photo(ANA), owner).await.unwrap().matched,
        None
    );

    // The best match names someone else: a mismatch, even with the owner listed too.
    let engine = engine_at(&answering(&[("1:2", 97.0), ("2:2", 99.0)]).await, None).await;
    let v = engine.verify(&photo(ANA), owner).await.unwrap();
    assert_eq!(v.matched, None);
    assert_eq!(v.best_candidate, Some(PersonId(2)));

    // An ExternalImageId FaceReko did not write names nobody.
    let engine = engine_at(&answering(&[("Ana", 99.0)]).await, None).await;
    assert_eq!(
        engine.verify(&photo(ANA), owner).await.unwrap().matched,
        None
    );

    // The owner's face above the threshold: granted, with that match's similarity.
    let engine = engine_at(&answering(&[("2:2", 30.0), ("1:1", 91.5)]).await, None).await;
    let v = engine.verify(&photo(ANA), owner).await.unwrap();
    assert_eq!(v.matched, Some(owner));
    assert_eq!(v.similarity, Some(91.5));
}

#[test]
fn no_region_anywhere_is_a_clear_config_error() {
    // Only when no endpoint URL is set does the region matter. The check runs in a child process whose
    // environment has no region and no AWS config files, whatever the machine running the tests has.
    const CHILD: &str = "FACEREKO_TEST_NO_REGION_CHILD";
    const NAME: &str = "no_region_anywhere_is_a_clear_config_error";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--include-ignored", "--nocapture"])
            .env(CHILD, "1")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = AwsConfig {
        access_key_id: Some(KEY_ID.into()),
        secret_access_key: Some(facereko_domain::Secret::new(SECRET)),
        profile: Some("facereko-test-profile-that-does-not-exist".into()),
        ..AwsConfig::default()
    };
    let e = rt.block_on(CollectionClient::new(&config)).unwrap_err();
    assert!(e.to_string().contains("aws.region"), "{e}");
}
