//! A push gateway on loopback for the tests: records every notification it is sent, can fail
//! a number of requests first, and can reject pushkeys — a real HTTP server, as a real push
//! gateway (Sygnal) would be.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde_json::{Value, json};

#[derive(Default)]
struct Recorded {
    received: Mutex<Vec<Value>>,
    /// Requests still to be answered with 500.
    failures_left: AtomicUsize,
    /// Pushkeys answered as rejected.
    rejected: Mutex<Vec<String>>,
}

pub struct Gateway {
    pub addr: SocketAddr,
    state: Arc<Recorded>,
    task: tokio::task::JoinHandle<()>,
}

async fn notify(
    State(state): State<Arc<Recorded>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    let rejected: Vec<String> = {
        let rejecting = state.rejected.lock().unwrap();
        body["notification"]["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["pushkey"].as_str())
            .filter(|key| rejecting.iter().any(|r| r == key))
            .map(str::to_owned)
            .collect()
    };
    state.received.lock().unwrap().push(body);
    (StatusCode::OK, Json(json!({ "rejected": rejected })))
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let state = Arc::new(Recorded::default());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/_matrix/push/v1/notify", post(notify))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Gateway { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/_matrix/push/v1/notify", self.addr)
    }

    pub fn fail_next(&self, requests: usize) {
        self.state.failures_left.store(requests, Ordering::SeqCst);
    }

    pub fn reject(&self, pushkey: &str) {
        self.state.rejected.lock().unwrap().push(pushkey.to_owned());
    }

    pub fn received(&self) -> Vec<Value> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) until `count` notifications arrived; returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "gateway got {} notifications, expected {count}: {:?}",
            self.received().len(),
            self.received()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}
