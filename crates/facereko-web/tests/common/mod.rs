//! Shared fixture: a real store in a temp dir, a real door controller on simulated hardware (scripted face
//! engine, a camera that "sees" a generated JPEG), a small face enroller, and the app's router.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use facereko_domain::{Attempt, Mode, NewAttempt, Outcome, PersonId, Photo, StageTimings};
use facereko_door::{DoorConfig, DoorHandle, Parts};
use facereko_hardware::sim::{self, CameraSource, SimCamera, SimOutputs, SimTapper};
use facereko_hardware::CardTap;
use facereko_store::{hash_password, NewAccount, Role, Store};
use facereko_vision::testing::ScriptedEngine;
use facereko_web::{AppState, EnrolError, FaceEnroller, WebConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Enrols any decodable photo at least 32 px wide with a fixed embedding; smaller ones have "no face".
/// Every face is the same face to it: asked to check, a photo "looks like" anyone else with a face.
pub struct TestEnroller(pub Store);

#[async_trait]
impl FaceEnroller for TestEnroller {
    async fn enrol(
        &self,
        person: PersonId,
        photo: Photo,
        check_others: bool,
    ) -> Result<i64, EnrolError> {
        let img = image::load_from_memory(&photo.bytes)
            .map_err(|e| EnrolError::BadImage(e.to_string()))?;
        if img.width() < 32 {
            return Err(EnrolError::NoFace);
        }
        if check_others {
            let faces = self.0.faces(None).await.unwrap();
            if let Some(other) = faces.iter().find(|f| f.person_id != person) {
                let name = self.0.person(other.person_id).await.unwrap().unwrap().name;
                return Err(EnrolError::LooksLike {
                    name,
                    similarity: 100.0,
                    threshold: THRESHOLD,
                });
            }
        }
        self.0
            .add_face(person, &[0.5; 128], "test", Some(&photo))
            .await
            .map_err(|e| EnrolError::Other(e.to_string()))
    }
    async fn delete(&self, face_id: i64) -> Result<(), EnrolError> {
        self.0
            .delete_face(face_id)
            .await
            .map_err(|e| EnrolError::Other(e.to_string()))
    }
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 120])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

pub const DOOR: &str = "front";
/// The similarity threshold the fixture's web app shows.
pub const THRESHOLD: f32 = 92.8;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub door: DoorHandle,
    pub tapper: SimTapper,
    pub engine: Arc<ScriptedEngine>,
    pub outputs: SimOutputs,
    pub state: AppState,
    pub app: Router,
    pub camera_jpeg: PathBuf,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
    pub fn location(&self) -> String {
        self.header("location")
    }
    /// `name=value` of every cookie set, for a following request.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .collect()
    }
    /// The first CSRF token in the page.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let i = t
            .find("name=\"csrf\" value=\"")
            .expect("page has a CSRF field")
            + 19;
        t[i..i + t[i..].find('"').unwrap()].to_string()
    }
}

/// A browser's cookies and the current CSRF token.
#[derive(Clone, Debug, Default)]
pub struct Browser {
    pub cookies: Vec<String>,
    pub csrf: String,
}

impl Browser {
    pub fn cookie_header(&self) -> String {
        self.cookies.join("; ")
    }
    pub fn absorb(&mut self, r: &Resp) {
        for c in r.cookies() {
            let name = c.split('=').next().unwrap_or("").to_string();
            self.cookies.retain(|x| !x.starts_with(&format!("{name}=")));
            if !c.ends_with('=') {
                self.cookies.push(c);
            }
        }
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with(WebConfig::default(), Mode::CardFace).await
    }

    pub async fn with(config: WebConfig, mode: Mode) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("facereko.db").display());
        let store = Store::open(&url, dir.path()).await.unwrap();
        let camera_jpeg = dir.path().join("camera.jpg");
        std::fs::write(&camera_jpeg, jpeg(320, 240)).unwrap();
        let camera = SimCamera::new(CameraSource::File(camera_jpeg.clone()));
        let engine = Arc::new(ScriptedEngine::new());
        let outputs = SimOutputs::new();
        let (reader, tapper) = sim::card_reader();
        let door_config = DoorConfig {
            mode,
            countdown_ms: 0,
            debounce_ms: 0,
            ..DoorConfig::default()
        };
        let parts = Parts {
            store: Arc::new(store.clone()),
            engine: Some(engine.clone()),
            camera: Arc::new(camera.clone()),
            outputs: Arc::new(outputs.clone()),
        };
        let (door, _task) = facereko_door::start(DOOR, door_config, parts, Box::new(reader), None)
            .await
            .unwrap();
        let state = AppState::new(
            store.clone(),
            door.clone(),
            Arc::new(TestEnroller(store.clone())),
            config,
        )
        .unwrap()
        .with_threshold(THRESHOLD);
        let app = facereko_web::router(state.clone());
        Self {
            dir,
            store,
            door,
            tapper,
            engine,
            outputs,
            state,
            app,
            camera_jpeg,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            bytes,
        }
    }

    pub async fn get(&self, path: &str, b: &Browser) -> Resp {
        let req = Request::get(path)
            .header(header::COOKIE, b.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    pub async fn post(&self, path: &str, b: &Browser, pairs: &[(&str, &str)]) -> Resp {
        let req = Request::post(path)
            .header(header::COOKIE, b.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form(pairs)))
            .unwrap();
        self.send(req).await
    }

    /// Creates an account directly in the store and signs in through the sign-in page.
    pub async fn account(&self, username: &str, role: Role) -> Browser {
        self.store
            .add_account(&NewAccount {
                username: username.into(),
                password_hash: hash_password("password123"),
                role,
                person_id: None,
                card_uid: None,
                must_change_password: false,
            })
            .await
            .unwrap();
        self.sign_in(username, "password123").await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> Browser {
        let mut b = Browser::default();
        let page = self.get("/login", &b).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        b.absorb(&page);
        let r = self
            .post(
                "/login",
                &b,
                &[
                    ("csrf", &page.csrf()),
                    ("username", username),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "sign-in failed: {}",
            r.text()
        );
        b.absorb(&r);
        let home = self.get("/", &b).await;
        assert_eq!(home.status, StatusCode::OK);
        b.csrf = home.csrf();
        b
    }

    pub async fn admin(&self) -> Browser {
        self.account("admin", Role::Admin).await
    }

    pub async fn person_with_card(&self, name: &str, uid: &str) -> PersonId {
        let id = self.store.add_person(name).await.unwrap();
        self.store
            .add_card(id, &uid.parse().unwrap(), None)
            .await
            .unwrap();
        id
    }

    /// Stores an attempt with a photo, as the door would.
    pub async fn attempt(
        &self,
        person: Option<(PersonId, &str)>,
        outcome: Outcome,
        photo: bool,
    ) -> Attempt {
        let p = Photo::from_bytes(jpeg(64, 48)).unwrap();
        self.store
            .record_attempt(
                &NewAttempt {
                    time: chrono::Utc::now(),
                    door_id: DOOR.into(),
                    card_uid: Some("04:A2:2B:19".parse().unwrap()),
                    person_id: person.map(|p| p.0),
                    person_name: person.map(|p| p.1.to_string()),
                    outcome,
                    similarity: Some(91.25),
                    distance: Some(0.31),
                    confidence: Some(99.5),
                    timings: StageTimings::default(),
                    detail: None,
                },
                photo.then_some(&p),
            )
            .await
            .unwrap()
    }

    pub fn tap(&self, uid: &str) {
        self.tapper.tap(CardTap::new(uid.parse().unwrap())).unwrap();
    }
}

/// A photo upload form (`csrf`, `photo`) as a browser sends it.
pub fn multipart(csrf: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----facerekoBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"me.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads a face photo for `person` as the person page does.
pub async fn upload(f: &Fixture, b: &Browser, person: PersonId, file: &[u8]) -> Resp {
    let (ct, body) = multipart(&b.csrf, file);
    f.send(
        Request::post(format!("/people/{}/faces", person.0))
            .header(header::COOKIE, b.cookie_header())
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

/// A door's settings for the page: two keys (one set by the environment), a check that wants a
/// positive number, one sink; test events are counted.
#[derive(Default)]
pub struct FakeSettings {
    pub tests: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl facereko_web::Settings for FakeSettings {
    async fn list(&self) -> Vec<facereko_web::SettingView> {
        let view = |key: &str, source: facereko_web::SettingSource| facereko_web::SettingView {
            key: key.into(),
            label: key.into(),
            help: String::new(),
            value: "10".into(),
            source,
            stored: None,
            choices: Vec::new(),
            input: "number",
        };
        vec![
            view("door.unlock_seconds", facereko_web::SettingSource::Default),
            view(
                "door.mode",
                facereko_web::SettingSource::Environment("FACEREKO_DOOR__MODE".into()),
            ),
        ]
    }
    async fn check(&self, _: &str, value: Option<&str>) -> Result<Option<String>, String> {
        match value {
            Some(v) if v.parse::<f64>().is_ok_and(|n| n > 0.0) => Ok(Some(v.to_string())),
            Some(_) => Err("door.unlock_seconds must be more than 0".into()),
            None => Ok(None),
        }
    }
    async fn sinks(&self) -> Vec<String> {
        vec!["mqtt: connected".into()]
    }
    async fn apply_now(&self, _: &str) -> bool {
        false
    }
    async fn send_test(&self, by: &str) -> Result<(), String> {
        self.tests.lock().unwrap().push(by.to_string());
        Ok(())
    }
}
