//! The Rekognition-compatible endpoint through its router, with the model-free colour describer:
//! signatures, every operation, and bad input.

mod common;

use common::*;
use facereko_rekognition::describe::sim::png;
use serde_json::json;

const ANA: [u8; 3] = [10, 0, 0];
const BEN: [u8; 3] = [20, 0, 0];

fn photo(colour: [u8; 3]) -> String {
    b64(&png((64, 64), &[(colour, 16, 16, 32, 32)]))
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    let body = json!({"CollectionId": "home"});

    let unsigned = axum::http::Request::post("/")
        .header("x-amz-target", "RekognitionService.CreateCollection")
        .header("content-type", "application/x-amz-json-1.1")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let (status, kind, v) = send(&ep, unsigned).await;
    assert_eq!(status, 403);
    assert_eq!(kind.as_deref(), Some("MissingAuthenticationTokenException"));
    assert_eq!(v["__type"], "MissingAuthenticationTokenException");

    let stranger = facereko_aws::sigv4::Key {
        access_key_id: "AKIAOTHERKEY00001".into(),
        secret_access_key: SECRET.into(),
    };
    let (status, kind, _) = send(&ep, signed("CreateCollection", &body, &stranger)).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("UnrecognizedClientException"))
    );

    let wrong_secret = facereko_aws::sigv4::Key {
        access_key_id: KEY_ID.into(),
        secret_access_key: "not-the-secret-not-the-secret-000".into(),
    };
    let (status, kind, _) = send(&ep, signed("CreateCollection", &body, &wrong_secret)).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("InvalidSignatureException"))
    );

    // A signed request whose body was swapped on the way.
    let mut req = signed("CreateCollection", &body, &key());
    *req.body_mut() = axum::body::Body::from(json!({"CollectionId": "evil"}).to_string());
    let (status, _, _) = send(&ep, req).await;
    assert_eq!(status, 403);

    // An unsigned request far over the size limit is refused for its missing signature: its body is
    // never read.
    let huge = axum::http::Request::post("/")
        .header("x-amz-target", "RekognitionService.IndexFaces")
        .body(axum::body::Body::from(vec![b' '; 64 * 1024 * 1024]))
        .unwrap();
    let (status, kind, _) = send(&ep, huge).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("MissingAuthenticationTokenException"))
    );

    let (_, _, v) = call(&ep, "ListCollections", json!({})).await;
    assert_eq!(v["CollectionIds"], json!([]), "nothing was created");
}

#[tokio::test]
async fn collections_are_created_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    let (status, _, v) = call(&ep, "CreateCollection", json!({"CollectionId": "home"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["StatusCode"], 200);
    assert!(v["CollectionArn"]
        .as_str()
        .unwrap()
        .ends_with(":collection/home"));
    let (status, kind, _) = call(&ep, "CreateCollection", json!({"CollectionId": "home"})).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ResourceAlreadyExistsException"))
    );
    call(&ep, "CreateCollection", json!({"CollectionId": "office"})).await;

    let (_, _, v) = call(&ep, "ListCollections", json!({"MaxResults": 1})).await;
    assert_eq!(v["CollectionIds"], json!(["home"]));
    assert_eq!(v["FaceModelVersions"], json!(["colour-sim-v1"]));
    let (_, _, v) = call(
        &ep,
        "ListCollections",
        json!({"MaxResults": 1, "NextToken": v["NextToken"]}),
    )
    .await;
    assert_eq!(v["CollectionIds"], json!(["office"]));
    assert!(v.get("NextToken").is_none());

    let (status, _, _) = call(&ep, "DeleteCollection", json!({"CollectionId": "home"})).await;
    assert_eq!(status, 200);
    let (status, kind, _) = call(&ep, "DeleteCollection", json!({"CollectionId": "home"})).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ResourceNotFoundException"))
    );
    let (status, kind, _) = call(&ep, "CreateCollection", json!({"CollectionId": "../x"})).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterException"))
    );
}

#[tokio::test]
async fn indexed_faces_are_found_by_search_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    call(&ep, "CreateCollection", json!({"CollectionId": "home"})).await;
    let (status, _, v) = call(
        &ep,
        "IndexFaces",
        json!({"CollectionId": "home", "Image": {"Bytes": photo(ANA)}, "ExternalImageId": "1:1"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let records = v["FaceRecords"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let ana_face = records[0]["Face"]["FaceId"].as_str().unwrap().to_string();
    let b = &records[0]["Face"]["BoundingBox"];
    assert_eq!(
        (b["Left"].as_f64(), b["Width"].as_f64()),
        (Some(0.25), Some(0.5))
    );
    call(
        &ep,
        "IndexFaces",
        json!({"CollectionId": "home", "Image": {"Bytes": photo(BEN)}, "ExternalImageId": "2:5"}),
    )
    .await;

    // Ana's look-alike photo (green 20) finds Ana first, above the original's 85.
    let (status, _, v) = call(
        &ep,
        "SearchFacesByImage",
        json!({"CollectionId": "home", "Image": {"Bytes": photo([10, 20, 0])},
               "MaxFaces": 1, "FaceMatchThreshold": 85}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let matches = v["FaceMatches"].as_array().unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["Face"]["ExternalImageId"], "1:1");
    assert_eq!(matches[0]["Face"]["FaceId"], ana_face.as_str());
    let s = matches[0]["Similarity"].as_f64().unwrap();
    assert!(s > 85.0 && s < 100.0, "{s}");
    assert!(v["SearchedFaceBoundingBox"]["Width"].as_f64().unwrap() > 0.0);

    // A stranger matches nobody; a blank photo has no face.
    let (_, _, v) = call(
        &ep,
        "SearchFacesByImage",
        json!({"CollectionId": "home", "Image": {"Bytes": photo([30, 0, 0])}}),
    )
    .await;
    assert_eq!(v["FaceMatches"], json!([]));
    let (status, kind, v) = call(
        &ep,
        "SearchFacesByImage",
        json!({"CollectionId": "home", "Image": {"Bytes": b64(&png((64, 64), &[]))}}),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterException"))
    );
    assert!(v["Message"].as_str().unwrap().contains("no faces"));

    let (_, _, v) = call(
        &ep,
        "ListFaces",
        json!({"CollectionId": "home", "MaxResults": 1}),
    )
    .await;
    assert_eq!(v["Faces"].as_array().unwrap().len(), 1);
    let token = v["NextToken"].clone();
    assert!(token.is_string());
    let (_, _, v2) = call(
        &ep,
        "ListFaces",
        json!({"CollectionId": "home", "MaxResults": 1, "NextToken": token}),
    )
    .await;
    assert_eq!(v2["Faces"].as_array().unwrap().len(), 1);
    assert_ne!(v["Faces"][0]["FaceId"], v2["Faces"][0]["FaceId"]);

    let missing = "00000000-0000-4000-8000-000000000000";
    let (_, _, v) = call(
        &ep,
        "DeleteFaces",
        json!({"CollectionId": "home", "FaceIds": [ana_face, missing]}),
    )
    .await;
    assert_eq!(v["DeletedFaces"], json!([ana_face]));
    assert_eq!(v["UnsuccessfulFaceDeletions"][0]["FaceId"], missing);
    let (_, _, v) = call(
        &ep,
        "SearchFacesByImage",
        json!({"CollectionId": "home", "Image": {"Bytes": photo(ANA)}}),
    )
    .await;
    assert_eq!(v["FaceMatches"], json!([]), "Ana's face is gone");

    // The collection is on disk: a new endpoint over the same folder still finds Ben.
    let again = endpoint(dir.path());
    let (_, _, v) = call(
        &again,
        "SearchFacesByImage",
        json!({"CollectionId": "home", "Image": {"Bytes": photo(BEN)}}),
    )
    .await;
    assert_eq!(v["FaceMatches"][0]["Face"]["ExternalImageId"], "2:5");
    assert_eq!(v["FaceMatches"][0]["Similarity"], 100.0);
}

#[tokio::test]
async fn index_faces_indexes_up_to_max_faces_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    call(&ep, "CreateCollection", json!({"CollectionId": "home"})).await;
    let group = png(
        (120, 60),
        &[
            (ANA, 0, 0, 40, 40),
            (BEN, 50, 0, 30, 30),
            ([30, 0, 0], 90, 0, 20, 20),
        ],
    );
    let (_, _, v) = call(
        &ep,
        "IndexFaces",
        json!({"CollectionId": "home", "Image": {"Bytes": b64(&group)}, "MaxFaces": 2}),
    )
    .await;
    assert_eq!(v["FaceRecords"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["UnindexedFaces"][0]["Reasons"],
        json!(["EXCEEDS_MAX_FACES"])
    );
    // Both indexed faces share the image id; the largest face came first.
    assert_eq!(
        v["FaceRecords"][0]["Face"]["ImageId"],
        v["FaceRecords"][1]["Face"]["ImageId"]
    );
    let first = &v["FaceRecords"][0]["FaceDetail"]["BoundingBox"];
    assert!((first["Width"].as_f64().unwrap() - 40.0 / 120.0).abs() < 1e-6);
}

#[tokio::test]
async fn compare_faces_matches_the_source_face_among_the_target_faces() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    let target = png((120, 60), &[(BEN, 0, 0, 40, 40), (ANA, 60, 10, 40, 40)]);
    let (status, _, v) = call(
        &ep,
        "CompareFaces",
        json!({"SourceImage": {"Bytes": photo(ANA)}, "TargetImage": {"Bytes": b64(&target)},
               "SimilarityThreshold": 90}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["FaceMatches"].as_array().unwrap().len(), 1);
    assert_eq!(v["FaceMatches"][0]["Similarity"], 100.0);
    assert!(
        (v["FaceMatches"][0]["Face"]["BoundingBox"]["Left"]
            .as_f64()
            .unwrap()
            - 0.5)
            .abs()
            < 1e-6
    );
    assert_eq!(v["UnmatchedFaces"].as_array().unwrap().len(), 1);
    let (status, kind, _) = call(
        &ep,
        "CompareFaces",
        json!({"SourceImage": {"Bytes": b64(&png((64, 64), &[]))}, "TargetImage": {"Bytes": b64(&target)}}),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidParameterException"))
    );
}

#[tokio::test]
async fn bad_input_gets_rekognitions_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ep = endpoint(dir.path());
    call(&ep, "CreateCollection", json!({"CollectionId": "home"})).await;
    let cases = [
        (
            "IndexFaces",
            json!({"CollectionId": "home", "Image": {"Bytes": b64(b"\xff\xd8\xff broken jpeg")}}),
            "InvalidImageFormatException",
        ),
        (
            "IndexFaces",
            json!({"CollectionId": "home", "Image": {"Bytes": "%%% not base64"}}),
            "InvalidImageFormatException",
        ),
        (
            "IndexFaces",
            json!({"CollectionId": "home", "Image": {"S3Object": {"Bucket": "b", "Name": "n"}}}),
            "InvalidParameterException",
        ),
        (
            "IndexFaces",
            json!({"CollectionId": "home", "Image": {"Bytes": photo(ANA)}, "ExternalImageId": "Ana Smith"}),
            "InvalidParameterException",
        ),
        (
            "IndexFaces",
            json!({"CollectionId": "nope", "Image": {"Bytes": photo(ANA)}}),
            "ResourceNotFoundException",
        ),
        (
            "SearchFacesByImage",
            json!({"CollectionId": "home", "Image": {"Bytes": photo(ANA)}, "FaceMatchThreshold": 150}),
            "InvalidParameterException",
        ),
        (
            "DeleteFaces",
            json!({"CollectionId": "home", "FaceIds": ["../../x"]}),
            "InvalidParameterException",
        ),
        (
            "CreateCollection",
            json!({"Collection": "home"}),
            "SerializationException",
        ),
        ("DetectLabels", json!({}), "UnknownOperationException"),
    ];
    for (op, body, expected) in cases {
        let (status, kind, v) = call(&ep, op, body).await;
        assert_eq!(status, 400, "{op}: {v}");
        assert_eq!(kind.as_deref(), Some(expected), "{op}: {v}");
        assert_eq!(v["__type"], expected);
    }
    // An image over 5 MB is refused before any decoding.
    let big = b64(&vec![0u8; 5 * 1024 * 1024 + 1]);
    let (status, kind, _) = call(
        &ep,
        "IndexFaces",
        json!({"CollectionId": "home", "Image": {"Bytes": big}}),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ImageTooLargeException"))
    );
    // Nothing was indexed by any of it.
    let (_, _, v) = call(&ep, "ListFaces", json!({"CollectionId": "home"})).await;
    assert_eq!(v["Faces"], json!([]));
}
