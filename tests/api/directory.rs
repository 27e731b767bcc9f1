//! User directory, reports and `timestamp_to_event`.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error, create_room};

#[tokio::test]
async fn user_directory_finds_room_mates_and_public_room_members() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let dave = server.register("dave", "pw").await;
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.user_id),
            Some(&bob.token),
            json!({ "displayname": "Bobby Tables" }),
        )
        .await;
    // alice and bob share a private room; carol sits in a public room; dave shares nothing.
    let (_, private) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "invite": [bob.user_id] }),
        )
        .await;
    let private = private["room_id"].as_str().unwrap();
    server
        .post(
            &format!("/_matrix/client/v3/join/{private}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&carol.token),
            json!({ "preset": "public_chat" }),
        )
        .await;
    let _ = dave;

    let search = |term: &str| json!({ "search_term": term, "limit": 10 });
    let (status, body) = server
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&alice.token),
            search("tables"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["user_id"], bob.user_id.as_str());
    assert_eq!(body["results"][0]["display_name"], "Bobby Tables");
    let (_, body) = server
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&alice.token),
            search("carol"),
        )
        .await;
    assert_eq!(
        body["results"].as_array().unwrap().len(),
        1,
        "public room members are found"
    );
    let (_, body) = server
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&alice.token),
            search("dave"),
        )
        .await;
    assert_eq!(body["results"], json!([]), "strangers are not");
    assert_eq!(body["limited"], false);
    let (_, body) = server
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&alice.token),
            json!({ "search_term": "localhost", "limit": 1 }),
        )
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["limited"], true);
}

// Multi-threaded: the CLI process blocks this thread while the in-process server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_and_listed_for_admins() {
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
    let (_, sent) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/r"),
            Some(&alice.token),
            json!({ "msgtype": "m.text", "body": "spam" }),
        )
        .await;
    let event = sent["event_id"].as_str().unwrap();
    let path = format!("/_matrix/client/v3/rooms/{room}/report/{event}");
    let (status, _) = server
        .post(&path, Some(&alice.token), json!({ "reason": "spam" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &server
            .post(&path, Some(&bob.token), json!({ "reason": "x" }))
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/report"),
            Some(&bob.token),
            json!({ "reason": "bad room" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/users/{}/report", alice.user_id),
            Some(&bob.token),
            json!({ "reason": "rude" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post(
            "/_matrix/client/v3/users/@ghost:localhost/report",
            Some(&bob.token),
            json!({ "reason": "?" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "same answer for unknown users");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["reports", "list"])
        .env("HEARTH_DATABASE_PATH", &server.config.database_path)
        .output()
        .unwrap();
    // The server holds the database; the CLI reaches it through the admin socket.
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["event_id"], event);
    assert_eq!(lines[0]["reason"], "spam");
    assert_eq!(lines[1]["reason"], "bad room");
    assert_eq!(lines[2]["user_id"], alice.user_id.as_str());
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({}),
        )
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    let mut sent = Vec::new();
    for i in 0..3 {
        let (_, body) = server
            .put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/ts{i}"),
                Some(&alice.token),
                json!({ "msgtype": "m.text", "body": format!("{i}") }),
            )
            .await;
        let id = body["event_id"].as_str().unwrap().to_owned();
        let (_, event) = server
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
                Some(&alice.token),
            )
            .await;
        sent.push((id, event["origin_server_ts"].as_u64().unwrap()));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let base = format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event");
    let (status, body) = server
        .get(
            &format!("{base}?ts={}&dir=f", sent[1].1),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event_id"], sent[1].0.as_str());
    let (_, body) = server
        .get(
            &format!("{base}?ts={}&dir=b", sent[2].1 - 1),
            Some(&alice.token),
        )
        .await;
    assert_eq!(body["event_id"], sent[1].0.as_str());
    let (_, body) = server
        .get(
            &format!("{base}?ts={}&dir=f", sent[2].1 + 1),
            Some(&alice.token),
        )
        .await;
    assert_eq!(body["errcode"], "M_NOT_FOUND");
    let (_, body) = server
        .get(&format!("{base}?ts=1&dir=f"), Some(&alice.token))
        .await;
    assert_eq!(
        body["event_id"].as_str().map(|id| id.starts_with('$')),
        Some(true),
        "the create event"
    );
}

/// Complement's `TestRoomSpecificUsernameChange`: a name alice gives herself in one room is
/// hers to show there, not the directory's: everyone finds her by her profile name only.
#[tokio::test]
async fn user_directory_shows_profile_names_not_room_specific_ones() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let eve = server.register("eve", "pw").await;
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            Some(&alice.token),
            json!({ "displayname": "Alice Cooper" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    create_room(&server, &alice, json!({ "visibility": "public" })).await;
    let private = create_room(
        &server,
        &bob,
        json!({ "visibility": "private", "invite": [alice.user_id] }),
    )
    .await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{private}"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{private}/state/m.room.member/{}",
                alice.user_id
            ),
            Some(&alice.token),
            json!({ "membership": "join", "displayname": "Freddy" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for searcher in [&eve, &bob] {
        for term in ["Alice Cooper", "@alice"] {
            let (status, body) = server
                .post(
                    "/_matrix/client/v3/user_directory/search",
                    Some(&searcher.token),
                    json!({ "search_term": term }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body["results"],
                json!([{ "user_id": alice.user_id, "display_name": "Alice Cooper" }]),
                "{} searching {term:?}",
                searcher.user_id
            );
        }
        let (_, body) = server
            .post(
                "/_matrix/client/v3/user_directory/search",
                Some(&searcher.token),
                json!({ "search_term": "Freddy" }),
            )
            .await;
        assert_eq!(body["results"], json!([]), "{}: {body}", searcher.user_id);
    }
}
