//! Account data, tags, and their delivery through `/sync`; ignored users.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error, create_room};

#[tokio::test]
async fn account_data_and_tags_round_trip_and_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({}),
        )
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    let user = &alice.user_id;
    let (_, first) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let token = first["next_batch"].as_str().unwrap().to_owned();

    let global = format!("/_matrix/client/v3/user/{user}/account_data/m.direct");
    let (status, _) = server
        .put(
            &global,
            Some(&alice.token),
            json!({ "@bob:localhost": [room] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, value) = server.get(&global, Some(&alice.token)).await;
    assert_eq!(value, json!({ "@bob:localhost": [room] }));
    assert_error(
        &server.get(&global, Some(&bob.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let missing = format!("/_matrix/client/v3/user/{user}/account_data/org.example.none");
    assert_error(
        &server.get(&missing, Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let fully_read =
        format!("/_matrix/client/v3/user/{user}/rooms/{room}/account_data/m.fully_read");
    assert_error(
        &server
            .put(&fully_read, Some(&alice.token), json!({ "event_id": "$x" }))
            .await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );

    let per_room =
        format!("/_matrix/client/v3/user/{user}/rooms/{room}/account_data/org.example.colour");
    server
        .put(&per_room, Some(&alice.token), json!({ "colour": "red" }))
        .await;
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/user/{user}/rooms/{room}/tags/m.favourite"),
            Some(&alice.token),
            json!({ "order": 0.5 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, tags) = server
        .get(
            &format!("/_matrix/client/v3/user/{user}/rooms/{room}/tags"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(tags, json!({ "tags": { "m.favourite": { "order": 0.5 } } }));

    let (_, sync) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}"),
            Some(&alice.token),
        )
        .await;
    let global_events = sync["account_data"]["events"].as_array().unwrap();
    assert!(
        global_events.iter().any(|e| e["type"] == "m.direct"),
        "{sync}"
    );
    let room_events: Vec<&Value> = sync["rooms"]["join"][&room]["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(
        room_events
            .iter()
            .any(|e| e["type"] == "m.tag" && e["content"]["tags"]["m.favourite"]["order"] == 0.5)
    );
    assert!(
        room_events
            .iter()
            .any(|e| e["type"] == "org.example.colour")
    );

    let (status, _) = server
        .request(
            reqwest::Method::DELETE,
            &format!("/_matrix/client/v3/user/{user}/rooms/{room}/tags/m.favourite"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, tags) = server
        .get(
            &format!("/_matrix/client/v3/user/{user}/rooms/{room}/tags"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(tags, json!({ "tags": {} }));
}

#[tokio::test]
async fn ignored_users_disappear_from_sync() {
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
    let (_, first) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let token = first["next_batch"].as_str().unwrap().to_owned();
    let ignore = format!(
        "/_matrix/client/v3/user/{}/account_data/m.ignored_user_list",
        alice.user_id
    );
    server
        .put(
            &ignore,
            Some(&alice.token),
            json!({ "ignored_users": { bob.user_id.clone(): {} } }),
        )
        .await;
    let send = |user: &crate::common::TestUser, txn: &str, text: &str| {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let token = user.token.clone();
        let body = json!({ "msgtype": "m.text", "body": text });
        let server = &server;
        async move { server.put(&path, Some(&token), body).await }
    };
    send(&bob, "b", "from bob").await;
    send(&alice, "a", "from alice").await;
    let (_, sync) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}"),
            Some(&alice.token),
        )
        .await;
    let bodies: Vec<&str> = sync["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, vec!["from alice"]);
}

#[tokio::test]
async fn ignored_users_disappear_from_messages() {
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
    for (user, txn, text) in [(&bob, "b", "from bob"), (&alice, "a", "from alice")] {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        server
            .put(
                &path,
                Some(&user.token),
                json!({ "msgtype": "m.text", "body": text }),
            )
            .await;
    }
    let ignore = format!(
        "/_matrix/client/v3/user/{}/account_data/m.ignored_user_list",
        alice.user_id
    );
    server
        .put(
            &ignore,
            Some(&alice.token),
            json!({ "ignored_users": { bob.user_id.clone(): {} } }),
        )
        .await;
    let (_, page) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
            Some(&alice.token),
        )
        .await;
    let senders: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sender"].as_str().unwrap())
        .collect();
    assert!(!senders.contains(&bob.user_id.as_str()), "{senders:?}");
    assert!(senders.contains(&alice.user_id.as_str()));
}

/// Complement's `TestInviteFromIgnoredUsersDoesNotAppearInSync`: an invite from an ignored
/// user is not shown, in incremental or initial syncs; other invites are.
#[tokio::test]
async fn invites_from_ignored_users_disappear_from_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let chris = server.register("chris", "pw").await;
    let (status, _) = server
        .put(
            &format!(
                "/_matrix/client/v3/user/{}/account_data/m.ignored_user_list",
                alice.user_id
            ),
            Some(&alice.token),
            json!({ "ignored_users": { bob.user_id.clone(): {} } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, first) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let bobs = create_room(
        &server,
        &bob,
        json!({ "preset": "private_chat", "invite": [alice.user_id] }),
    )
    .await;
    let chriss = create_room(
        &server,
        &chris,
        json!({ "preset": "private_chat", "invite": [alice.user_id] }),
    )
    .await;
    for query in [format!("?since={since}&timeout=0"), String::new()] {
        let (status, sync) = server
            .get(
                &format!("/_matrix/client/v3/sync{query}"),
                Some(&alice.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{sync}");
        let invites = &sync["rooms"]["invite"];
        assert!(invites.get(&bobs).is_none(), "{query}: {invites}");
        assert!(invites.get(&chriss).is_some(), "{query}: {invites}");
    }
}
