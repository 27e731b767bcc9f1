//! Display name and avatar URL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, public_room};

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

async fn member_content(
    server: &TestServer,
    viewer: &TestUser,
    room: &str,
    user: &TestUser,
) -> Value {
    let path = format!(
        "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
        user.user_id
    );
    let (status, body) = server.get(&path, Some(&viewer.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `m.room.member` events of `user` in the room's timeline, newest first.
async fn member_events(
    server: &TestServer,
    viewer: &TestUser,
    room: &str,
    user: &TestUser,
) -> Vec<Value> {
    let path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50");
    let (status, body) = server.get(&path, Some(&viewer.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == user.user_id.as_str())
        .cloned()
        .collect()
}

#[tokio::test]
async fn profile_changes_reach_the_rooms_the_user_is_joined_to() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let shared = public_room(&server, &alice, &bob).await;
    let invited = create_room(
        &server,
        &alice,
        json!({ "preset": "private_chat", "invite": [bob.user_id] }),
    )
    .await;
    let (_, first) = server
        .get("/_matrix/client/v3/sync?timeout=0", Some(&bob.token))
        .await;
    let since = first["next_batch"].as_str().expect("next_batch").to_owned();

    let avatar = "mxc://localhost/alice-avatar";
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id),
            Some(&alice.token),
            json!({ "avatar_url": avatar }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for room in [&shared, &invited] {
        let content = member_content(&server, &alice, room, &alice).await;
        assert_eq!(
            content,
            json!({ "membership": "join", "displayname": "alice", "avatar_url": avatar }),
            "alice's member event in {room}"
        );
    }
    // Bob sees the change in his incremental sync, as the spec's clients expect.
    let (_, next) = server
        .get(
            &format!("/_matrix/client/v3/sync?timeout=0&since={since}"),
            Some(&bob.token),
        )
        .await;
    let events = next["rooms"]["join"][&shared]["timeline"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == alice.user_id.as_str()
            && e["content"]["avatar_url"] == avatar
            && e["unsigned"]["prev_content"]["avatar_url"].is_null()),
        "no member event with the new avatar in bob's sync: {next}"
    );

    // The same value again sends nothing; clearing it removes the key from the member event.
    let before = member_events(&server, &alice, &shared, &alice).await.len();
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id),
            Some(&alice.token),
            json!({ "avatar_url": avatar }),
        )
        .await;
    assert_eq!(
        member_events(&server, &alice, &shared, &alice).await.len(),
        before
    );
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id),
            Some(&alice.token),
            json!({ "avatar_url": null }),
        )
        .await;
    assert_eq!(
        member_content(&server, &alice, &shared, &alice).await,
        json!({ "membership": "join", "displayname": "alice" })
    );

    // A display name change reaches rooms bob is joined to, not the one he is only invited to.
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.user_id),
            Some(&bob.token),
            json!({ "displayname": "Bob B." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        member_content(&server, &bob, &shared, &bob).await,
        json!({ "membership": "join", "displayname": "Bob B." })
    );
    let invite = member_content(&server, &alice, &invited, &bob).await;
    assert_eq!(invite["membership"], "invite");
    assert_eq!(
        invite["displayname"], "bob",
        "the invite is left as it was: {invite}"
    );
}
