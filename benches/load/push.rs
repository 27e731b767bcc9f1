//! The `push` scenario: one sender in a room of many local members, all with the default push
//! rules and some with an HTTP pusher; the bench itself is their push gateway on loopback. The
//! measured window runs from the first message to the last push reaching the gateway, so the
//! server's CPU per message covers evaluating every member's rules and delivering the pushes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

use super::{Cli, Client, Failure, ProcWindow, register_many, round, settle};

/// A push gateway that counts what it receives and accepts everything.
async fn start_gateway() -> Result<(String, Arc<AtomicUsize>), Failure> {
    let received = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    async fn notify(State(count): State<Arc<AtomicUsize>>, Json(_): Json<Value>) -> Json<Value> {
        count.fetch_add(1, Ordering::SeqCst);
        Json(json!({ "rejected": [] }))
    }
    let app = Router::new()
        .route("/_matrix/push/v1/notify", post(notify))
        .with_state(received.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/_matrix/push/v1/notify"), received))
}

pub async fn run(
    cli: &Cli,
    http: &reqwest::Client,
    members: usize,
    pushers: usize,
    messages: usize,
) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let mut window = ProcWindow::default();
    let (gateway, received) = start_gateway().await?;
    let sender = Client::register(http, url, &format!("{}push-sender", cli.prefix)).await?;
    let room = sender.create_room(true).await?;
    let clients = register_many(http, url, &cli.prefix, "push", members).await?;
    for client in &clients {
        client.join(&room).await?;
    }
    for (i, client) in clients.iter().take(pushers).enumerate() {
        client
            .post(
                "/_matrix/client/v3/pushers/set",
                json!({
                    "kind": "http",
                    "app_id": "org.example.bench",
                    "pushkey": format!("key{i}"),
                    "app_display_name": "bench",
                    "device_display_name": "bench",
                    "lang": "en",
                    "data": { "url": gateway, "format": "event_id_only" },
                }),
            )
            .await?;
    }
    settle(cli.pid, &cli.also_idle).await;
    let before = received.load(Ordering::SeqCst);
    window.start(cli.pid);
    let started = Instant::now();
    for i in 0..messages {
        sender
            .send(&room, &format!("p{i}"), &format!("push {i}"))
            .await?;
    }
    let sent = started.elapsed().as_secs_f64();
    let expected = before + messages * pushers;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.load(Ordering::SeqCst) < expected {
        if Instant::now() > deadline {
            return Err(format!(
                "push timed out: the gateway got {} of {} pushes",
                received.load(Ordering::SeqCst) - before,
                messages * pushers
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = started.elapsed().as_secs_f64();
    window.stop(cli.pid);
    Ok((
        messages,
        json!({
            "members": members + 1,
            "pushers": pushers,
            "pushes": messages * pushers,
            "send_seconds": round(sent),
            "all_pushed_seconds": round(delivered),
        }),
        window,
    ))
}
