//! Rooms: creation, membership, messages, state, redaction, aliases, visibility, restarts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, send_text};

async fn messages(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    query: &str,
) -> (StatusCode, Value) {
    server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?{query}"),
            Some(&user.token),
        )
        .await
}

fn bodies(page: &Value) -> Vec<String> {
    page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn create_room_sets_up_state() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "name": "Hearth", "topic": "Warm" }),
    )
    .await;
    let (_, joined) = server
        .get("/_matrix/client/v3/joined_rooms", Some(&alice.token))
        .await;
    assert_eq!(joined["joined_rooms"], json!([room]));
    let (status, state) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let find = |kind: &str| {
        state
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find("m.room.create")["content"]["room_version"], "10");
    assert_eq!(find("m.room.member")["content"]["membership"], "join");
    assert_eq!(
        find("m.room.power_levels")["content"]["users"][&alice.user_id],
        100
    );
    assert_eq!(find("m.room.join_rules")["content"]["join_rule"], "invite");
    assert_eq!(
        find("m.room.history_visibility")["content"]["history_visibility"],
        "shared"
    );
    assert_eq!(find("m.room.name")["content"]["name"], "Hearth");
    assert_eq!(find("m.room.topic")["content"]["topic"], "Warm");
    assert_eq!(
        find("m.room.topic")["content"]["m.topic"],
        json!({ "m.text": [{ "body": "Warm", "mimetype": "text/plain" }] }),
        "the rich topic is written beside the plain one"
    );
    for event in state.as_array().unwrap() {
        assert!(event["event_id"].as_str().unwrap().starts_with('$'));
    }
    let (_, name) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(name, json!({ "name": "Hearth" }));
    let (_, name) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(name, json!({ "name": "Hearth" }));

    let response = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "room_version": "999" }),
        )
        .await;
    assert_error(
        &response,
        StatusCode::BAD_REQUEST,
        "M_UNSUPPORTED_ROOM_VERSION",
    );
}

#[tokio::test]
async fn messages_are_idempotent_visible_to_members_and_paginate() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let first = send_text(&server, &alice, &room, "t1", "one").await;
    assert_eq!(
        send_text(&server, &alice, &room, "t1", "one").await,
        first,
        "same txn, same event"
    );
    for (i, text) in ["two", "three", "four", "five"].iter().enumerate() {
        send_text(&server, &alice, &room, &format!("t{}", i + 2), text).await;
    }
    let (status, event) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{first}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["content"]["body"], "one");
    assert_eq!(event["unsigned"]["transaction_id"], "t1");

    // Not a member: refused.
    assert_error(
        &messages(&server, &bob, &room, "dir=b").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    // An event one may not read is one that is not there (spec: 404 for both).
    assert_error(
        &server
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/event/{first}"),
                Some(&bob.token),
            )
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );

    // Backward pagination, two by two, following `end`.
    let mut collected = Vec::new();
    let mut query =
        "dir=b&limit=2&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D".to_owned();
    for _ in 0..10 {
        let (status, page) = messages(&server, &alice, &room, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        collected.extend(bodies(&page));
        match page["end"].as_str() {
            Some(end) => {
                query = format!(
                    "dir=b&limit=2&from={end}&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D"
                )
            }
            None => break,
        }
    }
    assert_eq!(collected, vec!["five", "four", "three", "two", "one"]);
    let (_, forward) = messages(&server, &alice, &room, "dir=f&limit=100").await;
    assert_eq!(
        bodies(&forward),
        vec!["one", "two", "three", "four", "five"]
    );
    assert_eq!(forward["chunk"][0]["type"], "m.room.create");

    // Bob joins after an invite and, with `shared` history, sees everything.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, page) = messages(&server, &bob, &room, "dir=b&limit=100").await;
    assert_eq!(bodies(&page).len(), 5);
    assert!(
        page["chunk"][0]["unsigned"].get("transaction_id").is_none(),
        "txn ids are for the sender only"
    );
    let (_, members) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(members["joined"].as_object().unwrap().len(), 2);
    assert_eq!(members["joined"][&bob.user_id]["display_name"], "bob");
}

#[tokio::test]
async fn joined_history_hides_earlier_events() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat", "initial_state": [
        { "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "joined" } }
    ] }))
    .await;
    send_text(&server, &alice, &room, "before", "before bob").await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "public rooms need no invite");
    send_text(&server, &alice, &room, "after", "after bob").await;
    let (_, page) = messages(&server, &bob, &room, "dir=b&limit=100").await;
    assert_eq!(bodies(&page), vec!["after bob"]);
    // Bob leaves; what he could see stays visible, later messages do not.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    send_text(&server, &alice, &room, "gone", "after bob left").await;
    let (_, page) = messages(&server, &bob, &room, "dir=b&limit=100").await;
    assert_eq!(bodies(&page), vec!["after bob"]);
}

#[tokio::test]
async fn bad_content_and_missing_power_are_refused_and_store_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/bad1");
    assert_error(
        &server
            .put(&path, Some(&alice.token), json!({ "msgtype": "m.text" }))
            .await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );
    let (_, page) = messages(&server, &alice, &room, "dir=b&limit=100").await;
    assert!(bodies(&page).is_empty());

    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let name = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    assert_error(
        &server
            .put(&name, Some(&bob.token), json!({ "name": "mine" }))
            .await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let response = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name"),
            Some(&alice.token),
        )
        .await;
    assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // A private room cannot be joined without an invite.
    let private = create_room(&server, &alice, json!({})).await;
    let response = server
        .post(
            &format!("/_matrix/client/v3/join/{private}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let response = server
        .post(
            "/_matrix/client/v3/join/!unknown:localhost",
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn redaction_removes_content_from_storage() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let event = send_text(&server, &alice, &room, "r1", "secret").await;
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{event}/x1"),
            Some(&alice.token),
            json!({ "reason": "oops" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, redacted) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{event}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(redacted["content"], json!({}));
    assert_eq!(
        redacted["unsigned"]["redacted_because"]["content"]["reason"],
        "oops"
    );
}

#[tokio::test]
async fn kick_ban_unban_forget() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    let url = |action: &str| format!("/_matrix/client/v3/rooms/{room}/{action}");
    server.post(&url("join"), Some(&bob.token), json!({})).await;
    let response = server
        .post(
            &url("kick"),
            Some(&bob.token),
            json!({ "user_id": alice.user_id }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) = server
        .post(
            &url("kick"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id, "reason": "bye" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post(
            &url("ban"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &server.post(&url("join"), Some(&bob.token), json!({})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let (_, members) = server
        .get(
            &format!("{}?membership=ban", url("members")),
            Some(&alice.token),
        )
        .await;
    assert_eq!(members["chunk"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .post(
            &url("unban"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.post(&url("join"), Some(&bob.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    server
        .post(&url("leave"), Some(&bob.token), json!({}))
        .await;
    let (status, _) = server
        .post(&url("forget"), Some(&bob.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, joined) = server
        .get("/_matrix/client/v3/joined_rooms", Some(&bob.token))
        .await;
    assert_eq!(joined["joined_rooms"], json!([]));
}

#[tokio::test]
async fn aliases_and_directory() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "room_alias_name": "lounge", "visibility": "public", "preset": "public_chat" }),
    )
    .await;
    let (status, body) = server
        .get(
            "/_matrix/client/v3/directory/room/%23lounge:localhost",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    let (_, visibility) = server
        .get(
            &format!("/_matrix/client/v3/directory/list/room/{room}"),
            None,
        )
        .await;
    assert_eq!(visibility["visibility"], "public");
    let (_, canonical) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(canonical["alias"], "#lounge:localhost");
    let (status, _) = server
        .post(
            "/_matrix/client/v3/join/%23lounge:localhost",
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let taken = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "room_alias_name": "lounge" }),
        )
        .await;
    assert_error(&taken, StatusCode::BAD_REQUEST, "M_ROOM_IN_USE");
    let bad = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"),
            Some(&alice.token),
            json!({ "alias": "#nope:localhost" }),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_ALIAS");
    let (status, _) = server
        .put(
            "/_matrix/client/v3/directory/room/%23other:localhost",
            Some(&bob.token),
            json!({ "room_id": room }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, aliases) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/aliases"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(aliases["aliases"].as_array().unwrap().len(), 2);
    let (status, _) = server
        .request(
            reqwest::Method::DELETE,
            "/_matrix/client/v3/directory/room/%23other:localhost",
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let gone = server
        .get("/_matrix/client/v3/directory/room/%23other:localhost", None)
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn every_supported_room_version_works() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    for version in [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
    ] {
        let room = create_room(
            &server,
            &alice,
            json!({ "room_version": version, "preset": "public_chat", "name": "v" }),
        )
        .await;
        if version == "12" {
            assert!(!room.contains(':'), "v12 room ids are event hashes: {room}");
        }
        let (status, body) = server
            .post(
                &format!("/_matrix/client/v3/join/{room}"),
                Some(&bob.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        send_text(&server, &bob, &room, &format!("v{version}"), "hello").await;
        let (_, page) = messages(&server, &alice, &room, "dir=b&limit=5").await;
        assert_eq!(bodies(&page), vec!["hello"], "v{version}");
        let (_, create) = server
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/state/m.room.create"),
                Some(&alice.token),
            )
            .await;
        assert_eq!(create["room_version"], version);
    }
}

#[tokio::test]
async fn rooms_survive_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({ "name": "Kept" })).await;
    let first = send_text(&server, &alice, &room, "k1", "before restart").await;
    server.restart().await;
    assert_eq!(
        send_text(&server, &alice, &room, "k1", "before restart").await,
        first,
        "txn survives"
    );
    send_text(&server, &alice, &room, "k2", "after restart").await;
    let (_, page) = messages(&server, &alice, &room, "dir=b&limit=10").await;
    assert_eq!(bodies(&page), vec!["after restart", "before restart"]);
    server.stop().await;
}

#[tokio::test]
async fn context_around_an_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send_text(&server, &alice, &room, &format!("c{i}"), &format!("m{i}")).await);
    }
    let path = format!("/_matrix/client/v3/rooms/{room}/context/{}?limit=2", ids[2]);
    let (status, body) = server.get(&path, Some(&alice.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event"]["content"]["body"], "m2");
    assert_eq!(body["events_before"][0]["content"]["body"], "m1");
    assert_eq!(body["events_after"][0]["content"]["body"], "m3");
    assert_eq!(body["events_before"].as_array().unwrap().len(), 1);
    assert_eq!(body["events_after"].as_array().unwrap().len(), 1);
    // `start` continues backwards from the context.
    let (_, page) = messages(
        &server,
        &alice,
        &room,
        &format!("dir=b&limit=1&from={}", body["start"].as_str().unwrap()),
    )
    .await;
    assert_eq!(bodies(&page), vec!["m0"]);
    assert!(
        body["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create")
    );
    let bob = server.register("bob", "pw").await;
    assert_error(
        &server.get(&path, Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn public_room_directory() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let busy = create_room(
        &server,
        &alice,
        json!({ "visibility": "public", "name": "Busy Hearth", "topic": "warm" }),
    )
    .await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{busy}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let quiet = create_room(
        &server,
        &alice,
        json!({ "visibility": "public", "name": "Quiet" }),
    )
    .await;
    create_room(&server, &alice, json!({ "name": "Hidden" })).await;

    let (status, body) = server.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![busy.as_str(), quiet.as_str()],
        "most members first, private rooms absent"
    );
    assert_eq!(body["chunk"][0]["num_joined_members"], 2);
    assert_eq!(body["chunk"][0]["name"], "Busy Hearth");

    let (_, first) = server
        .get("/_matrix/client/v3/publicRooms?limit=1", None)
        .await;
    assert_eq!(first["chunk"].as_array().unwrap().len(), 1);
    let next = first["next_batch"].as_str().unwrap();
    let (_, second) = server
        .get(
            &format!("/_matrix/client/v3/publicRooms?limit=1&since={next}"),
            None,
        )
        .await;
    assert_eq!(second["chunk"][0]["room_id"], quiet.as_str());
    assert!(second.get("next_batch").is_none());

    let (status, found) = server
        .post(
            "/_matrix/client/v3/publicRooms",
            Some(&bob.token),
            json!({ "filter": { "generic_search_term": "HEARTH" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(found["chunk"][0]["room_id"], busy.as_str());

    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/directory/list/room/{quiet}"),
            Some(&bob.token),
            json!({ "visibility": "private" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "bob has no power in that room"
    );
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/directory/list/room/{quiet}"),
            Some(&alice.token),
            json!({ "visibility": "private" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(body["chunk"].as_array().unwrap().len(), 1);
    // The member count follows leaves too.
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{busy}/leave"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let (_, body) = server.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(body["chunk"][0]["num_joined_members"], 1);
}

#[tokio::test]
async fn a_thousand_events_paginate_exactly_once_in_both_directions() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let total = 1000;
    let mut sent = Vec::with_capacity(total);
    for i in 0..total {
        sent.push(send_text(&server, &alice, &room, &format!("p{i}"), &format!("{i}")).await);
    }
    let only_messages = "filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D";
    let collect = |direction: &'static str| {
        let server = &server;
        let alice = &alice;
        let room = room.clone();
        async move {
            let mut ids = Vec::new();
            let mut from = String::new();
            loop {
                let query = format!("dir={direction}&limit=97&{only_messages}{from}");
                let (status, page) = messages(server, alice, &room, &query).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                ids.extend(
                    page["chunk"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap().to_owned()),
                );
                match page["end"].as_str() {
                    Some(end) => from = format!("&from={end}"),
                    None => break,
                }
            }
            ids
        }
    };
    let backward = collect("b").await;
    let mut expected_backward = sent.clone();
    expected_backward.reverse();
    assert_eq!(backward, expected_backward);
    let forward = collect("f").await;
    assert_eq!(forward, sent);
}

#[tokio::test]
async fn kicked_users_cannot_send_and_banned_users_cannot_join() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    send_text(&server, &bob, &room, "b1", "while joined").await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/b2");
    let response = server
        .put(
            &path,
            Some(&bob.token),
            json!({ "msgtype": "m.text", "body": "after kick" }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (_, page) = messages(&server, &alice, &room, "dir=b&limit=50").await;
    assert_eq!(bodies(&page), vec!["while joined"], "nothing stored");
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/ban"),
            Some(&alice.token),
            json!({ "user_id": bob.user_id }),
        )
        .await;
    let response = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn members_at_a_point_in_time_and_acl_content_checks() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    let (_, page) = messages(&server, &alice, &room, "dir=b&limit=1").await;
    let before_bob = page["start"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let members = |query: String| {
        let server = &server;
        let alice = &alice;
        let room = room.clone();
        async move {
            let (status, body) = server
                .get(
                    &format!("/_matrix/client/v3/rooms/{room}/members{query}"),
                    Some(&alice.token),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut users: Vec<String> = body["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["state_key"].as_str().unwrap().to_owned())
                .collect();
            users.sort();
            users
        }
    };
    assert_eq!(
        members(String::new()).await,
        vec![alice.user_id.clone(), bob.user_id.clone()]
    );
    assert_eq!(
        members(format!("?at={before_bob}")).await,
        vec![alice.user_id.clone()]
    );
    assert_eq!(
        members("?not_membership=join".to_owned()).await,
        Vec::<String>::new()
    );

    let acl = format!("/_matrix/client/v3/rooms/{room}/state/m.room.server_acl/");
    let bad = server
        .put(
            &acl,
            Some(&alice.token),
            json!({ "allow": "*", "deny": [] }),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let (status, _) = server
        .put(
            &acl,
            Some(&alice.token),
            json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn state_events_carry_prev_content_and_messages_carry_age() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({ "name": "First" })).await;
    let name = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    let (status, _) = server
        .put(&name, Some(&alice.token), json!({ "name": "Second" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, event) = server
        .get(&format!("{name}?format=event"), Some(&alice.token))
        .await;
    assert_eq!(event["content"]["name"], "Second");
    assert_eq!(event["unsigned"]["prev_content"]["name"], "First");
    assert_eq!(event["unsigned"]["prev_sender"], alice.user_id.as_str());
    let id = send_text(&server, &alice, &room, "age", "hi").await;
    let (_, message) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
            Some(&alice.token),
        )
        .await;
    assert!(message["unsigned"]["age"].is_u64(), "{message}");
}
