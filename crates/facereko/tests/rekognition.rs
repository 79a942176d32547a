//! The Rekognition options end to end, with the real binary and the real face models: the original's
//! boto3 scripts against `serve`'s Rekognition-compatible endpoint, and (with `--features aws`) a door
//! whose Rekognition engine asks its own endpoint.

mod common;

use std::path::{Path, PathBuf};

use common::{facereko, Daemon};
#[cfg(feature = "aws")]
use common::{ok, wait_attempts};

const KEY_ID: &str = "FACEREKOTESTKEY0001";
const SECRET: &str = "facereko-test-secret-0123456789abcdef";

fn env_path(var: &str) -> PathBuf {
    PathBuf::from(
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (scripts/test.sh sets it)")),
    )
}

fn lfw(rel: &str) -> PathBuf {
    env_path("FACEREKO_FACES_DIR").join("lfw-dev").join(rel)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data directory whose config enables the endpoint on `port`, plus `extra` TOML.
fn data_dir(port: u16, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("facereko.toml"),
        format!(
            "[door]\ncapture_window_ms = 300\ncountdown_ms = 0\n\
             [vision]\nmodels_dir = {:?}\n{extra}\n\
             [rekognition_api]\nenabled = true\nbind = \"127.0.0.1:{port}\"\n\
             access_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\n",
            env_path("FACEREKO_MODELS_DIR").display().to_string()
        ),
    )
    .unwrap();
    dir
}

fn blank(dir: &Path) -> PathBuf {
    let p = dir.join("blank.png");
    image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]))
        .save(&p)
        .unwrap();
    p
}

#[test]
#[ignore = "needs FACEREKO_TEST_PYTHON (a Python with boto3), FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
fn the_originals_boto3_scripts_work_against_the_endpoint() {
    let python = env_path("FACEREKO_TEST_PYTHON");
    let port = free_port();
    let dir = data_dir(port, "");
    let daemon = Daemon::start(dir.path(), &["--simulate", "--mode", "card"]);
    daemon.wait_log(&format!("rekognition api: http://127.0.0.1:{port}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boto3/original_scripts.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .args([KEY_ID, SECRET])
        .arg(lfw("Aaron_Peirsol/01.jpg"))
        .arg(lfw("Aaron_Peirsol/02.jpg"))
        .arg(lfw("Aaron_Sorkin/01.jpg"))
        .arg(blank(dir.path()))
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    for step in [
        "Collection ARN: ",
        "Faces indexed: ",
        "Identity matched Aaron with ",
        "stranger: no match",
        "compare_faces: same",
        "no face: InvalidParameterException",
        "wrong key: InvalidSignatureException",
        "cleaned up",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    // Every request was logged with its outcome, and the wrong key was refused.
    let log = daemon.log();
    assert!(log.contains("InvalidSignatureException"), "{log}");
    assert!(daemon.stop().success());
}

#[cfg(feature = "aws")]
#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
fn a_door_on_the_rekognition_engine_grants_the_card_owner_through_its_own_endpoint() {
    let port = free_port();
    let extra = format!(
        "engine = \"rekognition\"\nfallback = \"none\"\n\
         [aws]\nregion = \"eu-west-1\"\nrekognition_endpoint_url = \"http://127.0.0.1:{port}\"\n\
         access_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\n"
    );
    let dir = data_dir(port, &extra);
    let data = dir.path();
    let daemon = Daemon::start(data, &["--simulate"]);
    daemon.wait_log(&format!("rekognition api: http://127.0.0.1:{port}"));
    let created = ok(data, &["collection", "create"]);
    assert!(created.contains("created collection home"), "{created}");
    let listed = ok(data, &["collection", "list"]);
    // The endpoint is served by the default local engine (ONNX), and says so.
    assert!(
        listed.starts_with("home\tblazeface-mobilefacenet-v1+mirror"),
        "{listed}"
    );

    // Enrolling indexes the face into the collection, under "<person id>:<face id>".
    let enrolled = ok(
        data,
        &[
            "enrol",
            "--name",
            "Aaron",
            "--image",
            lfw("Aaron_Peirsol/01.jpg").to_str().unwrap(),
            "--card",
            "04:A2:2B:19",
        ],
    );
    assert!(
        enrolled.contains("indexed into Rekognition collection home"),
        "{enrolled}"
    );
    ok(
        data,
        &[
            "enrol",
            "--name",
            "Sorkin",
            "--image",
            lfw("Aaron_Sorkin/01.jpg").to_str().unwrap(),
            "--card",
            "04:00:00:01",
        ],
    );
    let synced = ok(data, &["collection", "sync"]);
    assert!(
        synced.contains("0 photos indexed, 2 already there"),
        "{synced}"
    );
    // `doctor` reaches the collection (it may fail on other checks here: no camera frame, no Pi).
    let out = facereko(data, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rekognition")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "ok", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("collection home reachable, 2 faces"),
        "{check}"
    );

    // The owner's other photo on the owner's card: granted by Rekognition.
    ok(
        data,
        &[
            "sim",
            "image",
            lfw("Aaron_Peirsol/02.jpg").to_str().unwrap(),
        ],
    );
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    let a = wait_attempts(data, 1);
    assert_eq!(a[0]["outcome"], "granted", "{:?}\n{}", a[0], daemon.log());
    assert_eq!(a[0]["detail"], "engine rekognition");
    let s = a[0]["similarity"].as_f64().unwrap();
    assert!((85.0..=100.0).contains(&s), "{s}");

    // The same face on Sorkin's card: the best match is not the card owner's.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    ok(data, &["sim", "tap", "04:00:00:01"]);
    let a = wait_attempts(data, 2);
    assert_eq!(a[0]["outcome"], "face_mismatch", "{:?}", a[0]);

    // No face in view: no_face, from SearchFacesByImage's InvalidParameterException.
    std::thread::sleep(std::time::Duration::from_millis(3200));
    ok(data, &["sim", "image", blank(data).to_str().unwrap()]);
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    let a = wait_attempts(data, 3);
    assert_eq!(a[0]["outcome"], "no_face", "{:?}", a[0]);

    // A collection that lost a face gets it back from `collection sync`.
    let out = facereko(data, &["collection", "delete", "home"]);
    assert!(!out.status.success(), "delete needs --yes");
    ok(data, &["collection", "delete", "home", "--yes"]);
    ok(data, &["collection", "create", "home"]);
    let synced = ok(data, &["collection", "sync"]);
    assert!(
        synced.contains("2 photos indexed, 0 already there"),
        "{synced}"
    );
    assert!(daemon.stop().success());
}

#[cfg(not(feature = "aws"))]
#[test]
fn without_the_aws_build_the_collection_commands_say_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = facereko(dir.path(), &["collection", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features aws"), "{err}");
}
