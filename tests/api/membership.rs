//! Knocking, restricted joins and room upgrades.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room};

async fn membership(server: &TestServer, viewer: &TestUser, room: &str, user: &TestUser) -> Value {
    let path = format!(
        "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
        user.user_id
    );
    server.get(&path, Some(&viewer.token)).await.1["membership"].clone()
}

#[tokio::test]
async fn knock_then_invite_then_join() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "room_version": "10", "initial_state": [
        { "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }
    ] }),
    )
    .await;
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/knock/{room}"),
            Some(&bob.token),
            json!({ "reason": "let me in" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    assert_eq!(membership(&server, &alice, &room, &bob).await, "knock");
    // Knocking does not let bob read the room.
    let response = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(
        response.0,
        StatusCode::OK,
        "knockers have a membership, reads are filtered: {}",
        response.1
    );
    assert!(
        response.1["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
    );
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(membership(&server, &alice, &room, &bob).await, "join");

    // Rooms that do not allow knocking refuse it.
    let closed = create_room(&server, &alice, json!({})).await;
    let response = server
        .post(
            &format!("/_matrix/client/v3/knock/{closed}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn restricted_rooms_admit_members_of_allowed_rooms() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let space = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{space}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let room = create_room(
        &server,
        &alice,
        json!({ "room_version": "10", "initial_state": [
        { "type": "m.room.join_rules", "state_key": "", "content": {
            "join_rule": "restricted",
            "allow": [{ "type": "m.room_membership", "room_id": space }],
        } }
    ] }),
    )
    .await;
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!(
        "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}?format=event",
        bob.user_id
    );
    let (_, event) = server.get(&path, Some(&alice.token)).await;
    assert_eq!(
        event["content"]["join_authorised_via_users_server"],
        alice.user_id.as_str()
    );
    let response = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&carol.token),
            json!({}),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn upgrade_moves_state_aliases_and_tombstones_the_old_room() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let old = create_room(&server, &alice, json!({ "preset": "public_chat", "name": "Old name", "room_alias_name": "main", "room_version": "10" })).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{old}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let upgrade = format!("/_matrix/client/v3/rooms/{old}/upgrade");
    assert_error(
        &server
            .post(&upgrade, Some(&bob.token), json!({ "new_version": "12" }))
            .await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &server
            .post(&upgrade, Some(&alice.token), json!({ "new_version": "99" }))
            .await,
        StatusCode::BAD_REQUEST,
        "M_UNSUPPORTED_ROOM_VERSION",
    );
    let (status, body) = server
        .post(&upgrade, Some(&alice.token), json!({ "new_version": "12" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();

    let (_, tombstone) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{old}/state/m.room.tombstone"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(tombstone["replacement_room"], new.as_str());
    let (_, create_event) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{new}/state/m.room.create"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(create_event["predecessor"]["room_id"], old.as_str());
    assert_eq!(create_event["room_version"], "12");
    let (_, name) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{new}/state/m.room.name"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(name["name"], "Old name");
    let (_, alias) = server
        .get("/_matrix/client/v3/directory/room/%23main:localhost", None)
        .await;
    assert_eq!(alias["room_id"], new.as_str());
    // Ordinary members can no longer speak in the old room, and can join the new one.
    let response = server
        .put(
            &format!("/_matrix/client/v3/rooms/{old}/send/m.room.message/x"),
            Some(&bob.token),
            json!({ "msgtype": "m.text", "body": "hi" }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{new}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The member event of `user` in `room`, as `viewer` sees it.
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

/// Complement's "POST /join/:room_id can join a room with custom content" (and by alias): the
/// body's other fields are the member event's content, as in Synapse; the server still decides
/// `membership` and the join's authoriser.
#[tokio::test]
async fn join_keeps_custom_content() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_alias_name": "custom" }),
    )
    .await;
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({ "foo": "bar", "reason": "hi", "membership": "ban", "join_authorised_via_users_server": alice.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content = member_content(&server, &alice, &room, &bob).await;
    assert_eq!(
        content,
        json!({ "membership": "join", "foo": "bar", "reason": "hi", "displayname": "bob" })
    );
    // By alias, with a name for this room only.
    let (status, body) = server
        .post(
            "/_matrix/client/v3/join/%23custom:localhost",
            Some(&carol.token),
            json!({ "foo": "baz", "displayname": "Caro" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content = member_content(&server, &alice, &room, &carol).await;
    assert_eq!(
        content,
        json!({ "membership": "join", "foo": "baz", "displayname": "Caro" })
    );
}

#[tokio::test]
async fn join_with_bad_custom_profile_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    for bad in [
        json!({ "displayname": 5 }),
        json!({ "displayname": "x".repeat(300) }),
        json!({ "avatar_url": ["mxc://localhost/a"] }),
    ] {
        let response = server
            .post(
                &format!("/_matrix/client/v3/rooms/{room}/join"),
                Some(&bob.token),
                bad.clone(),
            )
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    }
    let (_, rooms) = server
        .get("/_matrix/client/v3/joined_rooms", Some(&bob.token))
        .await;
    assert_eq!(rooms["joined_rooms"], json!([]));
}
