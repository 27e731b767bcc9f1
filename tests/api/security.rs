//! Regression tests for the holes found in the security review: each reproduces an attack over
//! HTTP and checks that it does no harm.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, public_room, send_text};

async fn event(server: &TestServer, user: &TestUser, room: &str, id: &str) -> (StatusCode, Value) {
    server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
            Some(&user.token),
        )
        .await
}

async fn send_redaction(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    txn: &str,
    target: &str,
) -> (StatusCode, Value) {
    server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.redaction/{txn}"),
            Some(&user.token),
            json!({ "redacts": target }),
        )
        .await
}

async fn redact(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    txn: &str,
    target: &str,
) -> (StatusCode, Value) {
    server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{target}/{txn}"),
            Some(&user.token),
            json!({}),
        )
        .await
}

/// The original reproduction: a user outside a private room redacts one of its events through
/// a room of their own.
#[tokio::test]
async fn nobody_redacts_an_event_through_another_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let mallory = server.register("mallory", "pw-mallory-1").await;
    let private = create_room(&server, &alice, json!({ "preset": "private_chat" })).await;
    let secret = send_text(&server, &alice, &private, "t1", "secret").await;
    let own = create_room(&server, &mallory, json!({})).await;

    let via_send = send_redaction(&server, &mallory, &own, "m1", &secret).await;
    assert_error(&via_send, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let via_redact = redact(&server, &mallory, &own, "m2", &secret).await;
    assert_error(&via_redact, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let (status, body) = event(&server, &alice, &private, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"]["body"], "secret", "{body}");
    assert_eq!(body["room_id"], private.as_str());
}

/// A member without the `redact` power level cannot redact someone else's event by either path.
#[tokio::test]
async fn a_member_without_power_cannot_redact_others() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let bob = server.register("bob", "pw-bob-1").await;
    let room = public_room(&server, &alice, &bob).await;
    let message = send_text(&server, &alice, &room, "t1", "mine").await;

    assert_error(
        &send_redaction(&server, &bob, &room, "b1", &message).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &redact(&server, &bob, &room, "b2", &message).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let (_, body) = event(&server, &bob, &room, &message).await;
    assert_eq!(body["content"]["body"], "mine", "{body}");

    // A redaction event with no target at all is refused too.
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.redaction/b3"),
            Some(&bob.token),
            json!({ "reason": "no target" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Redacting through `/send` works like `/redact` for what one may redact, in old and new room
/// versions, and the redacted event keeps its own room id.
#[tokio::test]
async fn own_redaction_through_send_applies_and_keeps_the_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    for version in ["10", "11"] {
        let room = create_room(&server, &alice, json!({ "room_version": version })).await;
        let message = send_text(&server, &alice, &room, &format!("t{version}"), "oops").await;
        let (status, body) =
            send_redaction(&server, &alice, &room, &format!("r{version}"), &message).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        let (status, body) = event(&server, &alice, &room, &message).await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        assert_eq!(
            body["content"],
            json!({}),
            "v{version}: content removed: {body}"
        );
        assert_eq!(body["room_id"], room.as_str(), "v{version}: {body}");
        assert!(
            body["unsigned"]["redacted_because"].is_object(),
            "v{version}: {body}"
        );
    }
}

/// `/redact` and `/send` transaction ids are separate: the same id names two requests.
#[tokio::test]
async fn redact_and_send_transaction_ids_do_not_meet() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let room = create_room(&server, &alice, json!({})).await;
    let first = send_text(&server, &alice, &room, "one", "first").await;
    let second = send_text(&server, &alice, &room, "redact:same", "second").await;

    let (status, body) = redact(&server, &alice, &room, "same", &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let redaction = body["event_id"].as_str().unwrap().to_owned();
    assert_ne!(redaction, second, "the /redact got the /send's event");
    let (status, again) = redact(&server, &alice, &room, "same", &first).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["event_id"],
        redaction.as_str(),
        "a retried /redact is idempotent"
    );

    // And the other way: a /send with a txn id used by /redact makes a new event.
    let third = send_text(&server, &alice, &room, "same", "third").await;
    assert_ne!(third, redaction);
    let (_, body) = event(&server, &alice, &room, &second).await;
    assert_eq!(body["content"]["body"], "second", "{body}");
}

/// A login body without `type` used to panic inside ruma and drop the connection.
#[tokio::test]
async fn login_without_a_type_is_a_clear_error() {
    let server = TestServer::start().await;
    for body in [
        json!({}),
        json!({ "identifier": { "type": "m.id.user", "user": "a" }, "password": "x" }),
        json!({ "user": "a", "password": "x" }),
    ] {
        let response = server
            .post("/_matrix/client/v3/login", None, body.clone())
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    }
    let (status, _) = server.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// `(type, state key)` pairs that read the same when joined with U+00FF are distinct state.
#[tokio::test]
async fn state_keys_that_join_to_the_same_text_stay_apart() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let room = create_room(&server, &alice, json!({})).await;
    let path = |kind: &str, key: &str| {
        format!(
            "/_matrix/client/v3/rooms/{room}/state/{}/{}",
            urlencode(kind),
            urlencode(key)
        )
    };
    let (status, body) = server
        .put(&path("aÿ", "b"), Some(&alice.token), json!({ "which": 1 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .put(&path("a", "ÿb"), Some(&alice.token), json!({ "which": 2 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, first) = server.get(&path("aÿ", "b"), Some(&alice.token)).await;
    let (_, second) = server.get(&path("a", "ÿb"), Some(&alice.token)).await;
    assert_eq!(first, json!({ "which": 1 }));
    assert_eq!(second, json!({ "which": 2 }));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The next frame that is an error, skipping sync payloads (at most a few).
async fn next_error(socket: &mut crate::sync_ws::Socket) -> Value {
    for _ in 0..5 {
        let frame = crate::sync_ws::next_payload(socket).await;
        if frame.get("errcode").is_some() {
            return frame;
        }
    }
    panic!("no error frame among the next five");
}

/// A live WebSocket sync ends as soon as its token is revoked, with the public error body.
#[tokio::test]
async fn websocket_sync_ends_when_its_session_does() {
    use futures::StreamExt;
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let (status, second) = server.login(&alice.user_id, &alice.password).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_token = second["access_token"].as_str().unwrap().to_owned();

    // Logout of the socket's own session.
    let mut socket = crate::sync_ws::connect(&server, &alice.token, "", true).await;
    let first = crate::sync_ws::next_payload(&mut socket).await;
    assert!(first["next_batch"].is_string(), "{first}");
    let (status, _) = server
        .post("/_matrix/client/v3/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let frame = next_error(&mut socket).await;
    assert_eq!(frame["errcode"], "M_UNKNOWN_TOKEN", "{frame}");
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("closed within 10 s");
    assert!(
        matches!(
            end,
            None | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | Some(Err(_))
        ),
        "{end:?}"
    );

    // Deleting the device from another session (first-frame authentication this time).
    let mut socket = crate::sync_ws::connect(&server, &second_token, "", false).await;
    crate::sync_ws::next_payload(&mut socket).await;
    let third = server.login(&alice.user_id, &alice.password).await.1;
    let third_token = third["access_token"].as_str().unwrap();
    let device = second["device_id"].as_str().unwrap();
    let path = format!("/_matrix/client/v3/devices/{device}");
    let (status, uiaa) = server
        .request(
            reqwest::Method::DELETE,
            &path,
            Some(third_token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{uiaa}");
    let auth = TestServer::password_auth(&alice, uiaa["session"].as_str());
    let (status, body) = server
        .request(
            reqwest::Method::DELETE,
            &path,
            Some(third_token),
            Some(json!({ "auth": auth })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let frame = next_error(&mut socket).await;
    assert_eq!(frame["errcode"], "M_UNKNOWN_TOKEN", "{frame}");
}

/// Complement's `TestFetchEventNonWorldReadable`: an event of a room one cannot read answers
/// exactly like an event that does not exist, so its existence is not revealed.
#[tokio::test]
async fn an_unreadable_event_is_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let bob = server.register("bob", "pw-bob-1").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "initial_state": [
            { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "shared" } }
        ] }),
    )
    .await;
    let message = send_text(&server, &alice, &room, "t1", "hello").await;
    let unreadable = event(&server, &bob, &room, &message).await;
    assert_error(&unreadable, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let missing = event(&server, &bob, &room, "$nothing").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(unreadable.1["error"], missing.1["error"], "same answer");
    assert_error(
        &event(&server, &bob, "!nowhere:localhost", &message).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
}
