//! Display name and avatar URL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, public_room, send_text};

#[tokio::test]
async fn get_and_set_profile_fields() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let base = format!("/_matrix/client/v3/profile/{}", alice.user_id);
    let (status, body) = server.get(&base, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "displayname": "alice" }),
        "the localpart is the initial display name"
    );

    let (status, _) = server
        .put(
            &format!("{base}/displayname"),
            Some(&alice.token),
            json!({ "displayname": "Alice A." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .put(
            &format!("{base}/avatar_url"),
            Some(&alice.token),
            json!({ "avatar_url": "mxc://localhost/abc" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get(&format!("{base}/displayname"), None).await;
    assert_eq!(body, json!({ "displayname": "Alice A." }));
    let (_, body) = server.get(&format!("{base}/avatar_url"), None).await;
    assert_eq!(body, json!({ "avatar_url": "mxc://localhost/abc" }));
    let (_, body) = server
        .get(
            &format!("/_matrix/client/r0/profile/{}", alice.user_id),
            None,
        )
        .await;
    assert_eq!(
        body,
        json!({ "displayname": "Alice A.", "avatar_url": "mxc://localhost/abc" })
    );

    // Clearing a field removes it.
    let (status, _) = server
        .put(
            &format!("{base}/displayname"),
            Some(&alice.token),
            json!({ "displayname": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get(&base, None).await;
    assert_eq!(body, json!({ "avatar_url": "mxc://localhost/abc" }));
}

#[tokio::test]
async fn profile_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.user_id),
            Some(&alice.token),
            json!({ "displayname": "pwned" }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (_, body) = server
        .get(&format!("/_matrix/client/v3/profile/{}", bob.user_id), None)
        .await;
    assert_eq!(body["displayname"], "bob", "unchanged");
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            None,
            json!({ "displayname": "x" }),
        )
        .await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let long = "x".repeat(300);
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            Some(&alice.token),
            json!({ "displayname": long }),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_error(
        &server
            .get("/_matrix/client/v3/profile/@nobody:localhost", None)
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    assert_error(
        &server
            .get("/_matrix/client/v3/profile/not-a-user-id", None)
            .await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
}

/// The member event of `user` in `room`, once `done` holds for it (polled: profile changes
/// reach rooms in the background).
async fn member_event_once(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!(
        "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
        user.user_id
    );
    let mut content = Value::Null;
    for _ in 0..200 {
        let (status, body) = server.get(&path, Some(&user.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        content = body;
        if done(&content) {
            return content;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("member event in {room} never matched: {content}");
}

async fn set_profile_field(server: &TestServer, user: &TestUser, field: &str, value: Value) {
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/{field}", user.user_id),
            Some(&user.token),
            json!({ field: value }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn profile_changes_reach_every_joined_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let shared = public_room(&server, &bob, &alice).await;
    let own = create_room(&server, &alice, json!({})).await;
    let left = create_room(&server, &bob, json!({ "preset": "public_chat" })).await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{left}"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{left}/leave"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A room-specific name and a custom key in the shared room.
    let (status, body) = server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{shared}/state/m.room.member/{}",
                alice.user_id
            ),
            Some(&alice.token),
            json!({ "membership": "join", "displayname": "Freddy", "org.example.mood": "calm" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    set_profile_field(&server, &alice, "displayname", json!("Alice Cooper")).await;
    set_profile_field(&server, &alice, "avatar_url", json!("mxc://localhost/face")).await;
    for room in [&shared, &own] {
        let content = member_event_once(&server, &alice, room, |c| {
            c["displayname"] == "Alice Cooper" && c["avatar_url"] == "mxc://localhost/face"
        })
        .await;
        assert_eq!(content["membership"], "join", "{content}");
    }
    let content = member_event_once(&server, &alice, &shared, |_| true).await;
    assert_eq!(
        content["org.example.mood"], "calm",
        "other content kept: {content}"
    );

    // The room she left gets no new join: she stays out.
    let (status, body) = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{left}/state/m.room.member/{}",
                alice.user_id
            ),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["membership"], "leave", "{body}");
    assert!(body.get("displayname").is_none(), "{body}");

    // Clearing the avatar removes it from the member events.
    set_profile_field(&server, &alice, "avatar_url", json!("")).await;
    member_event_once(&server, &alice, &own, |c| {
        c.get("avatar_url").is_none() && c["displayname"] == "Alice Cooper"
    })
    .await;
}

#[tokio::test]
async fn a_room_that_refuses_the_update_does_not_stop_the_others() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let full = create_room(&server, &alice, json!({})).await;
    // Rooms are visited in room id order: once a room after `full` is updated, `full` had
    // its turn.
    let mut fine = create_room(&server, &alice, json!({})).await;
    for _ in 0..50 {
        if fine > full {
            break;
        }
        fine = create_room(&server, &alice, json!({})).await;
    }
    assert!(fine > full, "no room id sorted after {full}");
    // A member event as close to the PDU size limit as the server takes (found by bisection:
    // refused sizes change nothing), so a longer name cannot fit.
    let member_path = format!(
        "/_matrix/client/v3/rooms/{full}/state/m.room.member/{}",
        alice.user_id
    );
    // Events first, so the depth stays two digits (one size) through the bisection.
    for i in 0..5 {
        send_text(&server, &alice, &full, &format!("t{i}"), "hi").await;
    }
    let (mut fits, mut too_large) = (60_000usize, 66_000usize);
    while too_large - fits > 1 {
        let padding = (fits + too_large) / 2;
        let (status, _) = server
            .put(
                &member_path,
                Some(&alice.token),
                json!({ "membership": "join", "displayname": "a", "padding": "x".repeat(padding) }),
            )
            .await;
        match status {
            StatusCode::OK => fits = padding,
            StatusCode::PAYLOAD_TOO_LARGE => too_large = padding,
            other => panic!("unexpected {other}"),
        }
    }
    let (status, _) = server
        .put(
            &member_path,
            Some(&alice.token),
            json!({ "membership": "join", "displayname": "a", "padding": "x".repeat(fits) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let long_name = "N".repeat(256);
    set_profile_field(&server, &alice, "displayname", json!(long_name)).await;
    let avatar = format!("mxc://localhost/{}", "a".repeat(900));
    set_profile_field(&server, &alice, "avatar_url", json!(avatar)).await;
    member_event_once(&server, &alice, &fine, |c| {
        c["displayname"] == long_name.as_str() && c["avatar_url"] == avatar.as_str()
    })
    .await;
    let (_, content) = server.get(&member_path, Some(&alice.token)).await;
    assert_eq!(content["displayname"], "a", "too large to update");
    assert_eq!(content["padding"].as_str().map(str::len), Some(fits));
}

#[tokio::test]
async fn many_rooms_end_with_the_last_profile() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let mut rooms = Vec::new();
    for _ in 0..30 {
        rooms.push(create_room(&server, &alice, json!({})).await);
    }
    for i in 0..5 {
        set_profile_field(&server, &alice, "displayname", json!(format!("name {i}"))).await;
    }
    for room in &rooms {
        member_event_once(&server, &alice, room, |c| c["displayname"] == "name 4").await;
    }
}
