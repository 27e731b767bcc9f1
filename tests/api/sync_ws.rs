//! WebSocket sync: pushes the same payloads as `/sync`, resumable without loss or repeats.

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use crate::common::TestServer;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &TestServer, token: &str, query: &str, header: bool) -> Socket {
    let url = format!(
        "{}/_hearth/client/v1/sync/ws{query}",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    if header {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connects");
    if !header {
        socket
            .send(Message::Text(
                json!({ "access_token": token }).to_string().into(),
            ))
            .await
            .unwrap();
    }
    socket
}

pub async fn next_payload(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

fn bodies(payload: &Value, room: &str) -> Vec<String> {
    payload["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn websocket_pushes_what_sync_returns_and_resumes_without_loss() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "preset": "public_chat" }),
        )
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;

    let mut socket = connect(&server, &bob.token, "", true).await;
    let initial = next_payload(&mut socket).await;
    assert!(
        initial["rooms"]["join"].get(&room).is_some(),
        "initial payload has the room"
    );
    let (_, http_initial) = server
        .get("/_matrix/client/v3/sync", Some(&bob.token))
        .await;
    let token = http_initial["next_batch"].as_str().unwrap().to_owned();

    let send = |txn: &'static str, text: &'static str| {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let (server, token) = (&server, alice.token.clone());
        async move {
            assert_eq!(
                server
                    .put(
                        &path,
                        Some(&token),
                        json!({ "msgtype": "m.text", "body": text })
                    )
                    .await
                    .0,
                StatusCode::OK
            )
        }
    };
    send("w1", "pushed").await;
    let pushed = next_payload(&mut socket).await;
    assert_eq!(bodies(&pushed, &room), vec!["pushed"]);
    let (_, polled) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(
        bodies(&polled, &room),
        bodies(&pushed, &room),
        "same events as /sync"
    );

    // Disconnect, miss two messages, resume from the last next_batch (token in the first frame).
    let resume = pushed["next_batch"].as_str().unwrap().to_owned();
    socket.close(None).await.unwrap();
    send("w2", "while away 1").await;
    send("w3", "while away 2").await;
    let mut socket = connect(&server, &bob.token, &format!("?since={resume}"), false).await;
    let caught_up = next_payload(&mut socket).await;
    assert_eq!(
        bodies(&caught_up, &room),
        vec!["while away 1", "while away 2"]
    );
    send("w4", "live again").await;
    let live = next_payload(&mut socket).await;
    assert_eq!(bodies(&live, &room), vec!["live again"], "nothing repeated");

    // A bad token ends the connection with an error frame.
    let mut bad = connect(&server, "hat_wrong", "", false).await;
    let error = next_payload(&mut bad).await;
    assert_eq!(error["errcode"], "M_UNKNOWN_TOKEN");
}
