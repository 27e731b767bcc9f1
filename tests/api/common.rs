//! Test harness: a real hearth on 127.0.0.1:0 in a temp dir, driven over HTTP like a client.

use std::path::PathBuf;

use hearth::{Config, RunningServer, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const SHARED_SECRET: &str = "complement";

/// A test configuration: open registration, no rate limits, cheap password hashing.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        database_path: dir.path().join("db"),
        port: 0,
        allow_registration: true,
        registration_shared_secret: Some(SHARED_SECRET.to_owned()),
        ..Config::default()
    };
    config.rate_limits.enabled = false;
    config.password_hash.memory_kib = 64;
    config.password_hash.iterations = 1;
    config.storage.sync_writes = false;
    config
}

pub struct TestServer {
    server: Option<RunningServer>,
    pub dir: TempDir,
    pub config: Config,
    pub base: String,
    pub http: reqwest::Client,
}

/// A registered user with a session.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub user_id: String,
    pub password: String,
    pub token: String,
    pub device_id: String,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir);
        adjust(&mut config);
        let server = Server::start(config.clone()).await.expect("server starts");
        let base = format!("http://{}", server.client_addr());
        let http = reqwest::Client::builder().build().expect("client");
        TestServer {
            server: Some(server),
            dir,
            config,
            base,
            http,
        }
    }

    /// Stops the server (flushing storage) and starts it again on the same data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.client_addr());
        self.server = Some(server);
    }

    /// Where the federation listener listens, when enabled.
    pub fn federation_addr(&self) -> Option<std::net::SocketAddr> {
        self.server
            .as_ref()
            .and_then(RunningServer::federation_addr)
    }

    /// The running server's services, to look at what storage holds.
    pub fn services(&self) -> std::sync::Arc<hearth::service::Services> {
        self.server
            .as_ref()
            .and_then(hearth::RunningServer::services)
            .expect("server running")
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hearth.toml")
    }

    /// Sends a request; returns status and JSON body (`Null` for an empty or non-JSON body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("body read");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    /// Sends raw bytes as the body of a POST.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("body read");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers `localpart` through the dummy UIAA flow.
    pub async fn register(&self, localpart: &str, password: &str) -> TestUser {
        let (status, body) = self
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({
                    "username": localpart,
                    "password": password,
                    "auth": { "type": "m.login.dummy" },
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "register {localpart}: {body}");
        TestUser {
            user_id: body["user_id"].as_str().expect("user_id").to_owned(),
            password: password.to_owned(),
            token: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            device_id: body["device_id"].as_str().expect("device_id").to_owned(),
        }
    }

    /// Logs in with the `m.id.user` identifier; returns the login response body.
    pub async fn login(&self, user: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/_matrix/client/v3/login",
            None,
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": user },
                "password": password,
            }),
        )
        .await
    }

    /// The UIAA `auth` object proving `user`'s password.
    pub fn password_auth(user: &TestUser, session: Option<&str>) -> Value {
        let mut auth = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user.user_id },
            "password": user.password,
        });
        if let Some(session) = session {
            auth["session"] = json!(session);
        }
        auth
    }
}

/// Asserts a Matrix error response.
#[track_caller]
pub fn assert_error(response: &(StatusCode, Value), status: StatusCode, errcode: &str) {
    assert_eq!(
        response.0, status,
        "unexpected status, body: {}",
        response.1
    );
    assert_eq!(
        response.1["errcode"], errcode,
        "unexpected errcode, body: {}",
        response.1
    );
    assert!(
        response.1["error"].is_string(),
        "error message missing: {}",
        response.1
    );
}

/// Creates a room as `user`; returns its id.
pub async fn create_room(server: &TestServer, user: &TestUser, body: Value) -> String {
    let (status, response) = server
        .post("/_matrix/client/v3/createRoom", Some(&user.token), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    response["room_id"].as_str().unwrap().to_owned()
}

/// Sends an `m.text` message; returns the event id.
pub async fn send_text(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    txn: &str,
    text: &str,
) -> String {
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
    let (status, body) = server
        .put(
            &path,
            Some(&user.token),
            json!({ "msgtype": "m.text", "body": text }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

/// A public room of `owner` that `guest` has joined; returns its id.
pub async fn public_room(server: &TestServer, owner: &TestUser, guest: &TestUser) -> String {
    let room = create_room(server, owner, json!({ "preset": "public_chat" })).await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&guest.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    room
}

/// The bodies of the `m.room.message` events in a joined room's timeline of a `/sync` answer.
pub fn timeline_bodies(sync: &Value, room: &str) -> Vec<String> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["type"] == "m.room.message")
                .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
