//! Sync-stream behaviour Complement checks: idempotent state, forgotten rooms, new room mates'
//! presence, and the viewer's membership on every event (`unsigned.membership`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, send_text};

async fn sync(server: &TestServer, user: &TestUser, query: &str) -> Value {
    let (status, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?timeout=0&{query}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn join(server: &TestServer, user: &TestUser, room: &str) {
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn leave(server: &TestServer, user: &TestUser, room: &str) {
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&user.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn presence_senders(sync: &Value) -> Vec<String> {
    sync["presence"]["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| e["sender"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn setting_identical_state_twice_returns_the_first_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/state/a.test.state/");
    let content = json!({ "a_key": "a_value" });
    let (status, first) = server.put(&path, Some(&alice.token), content.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = server.put(&path, Some(&alice.token), content).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(first["event_id"], second["event_id"]);
    // Different content is a new event.
    let (_, third) = server
        .put(&path, Some(&alice.token), json!({ "a_key": "other" }))
        .await;
    assert_ne!(third["event_id"], first["event_id"]);
    // The room's timeline holds each distinct state event once.
    let (status, messages) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    let count = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "a.test.state")
        .count();
    assert_eq!(count, 2, "{messages}");
}

#[tokio::test]
async fn a_forgotten_room_leaves_incremental_sync_but_not_initial_and_hides_its_messages() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    join(&server, &bob, &room).await;
    send_text(&server, &alice, &room, "t1", "hello").await;
    let before_leave = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    leave(&server, &alice, &room).await;
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/forget"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    send_text(&server, &bob, &room, "t2", "after").await;

    let include_leave = "filter=%7B%22room%22%3A%7B%22include_leave%22%3Atrue%7D%7D";
    let incremental = sync(
        &server,
        &alice,
        &format!("since={before_leave}&{include_leave}"),
    )
    .await;
    assert!(
        incremental["rooms"]["leave"][&room].is_object(),
        "the leave must reach other devices: {incremental}"
    );
    let initial = sync(&server, &alice, include_leave).await;
    assert!(
        initial["rooms"]["leave"][&room].is_null(),
        "a forgotten room stays out of initial sync: {initial}"
    );
    for query in ["?dir=b", ""] {
        assert_error(
            &server
                .get(
                    &format!("/_matrix/client/v3/rooms/{room}/messages{query}"),
                    Some(&alice.token),
                )
                .await,
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
        );
    }
    // Without `dir`, `/messages` pages backwards (as Synapse): bob's newest message first.
    let (status, page) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["chunk"][0]["content"]["body"], "after", "{page}");
}

#[tokio::test]
async fn new_room_mates_presence_arrives_once_in_incremental_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    // Both are online, before they share a room.
    for user in [&alice, &bob] {
        let (status, body) = server
            .put(
                &format!("/_matrix/client/v3/presence/{}/status", user.user_id),
                Some(&user.token),
                json!({ "presence": "online" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let alice_since = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_since = sync(&server, &bob, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    join(&server, &bob, &room).await;

    let alice_sync = sync(&server, &alice, &format!("since={alice_since}")).await;
    assert!(
        presence_senders(&alice_sync).contains(&bob.user_id),
        "the existing member sees the new member's presence: {alice_sync}"
    );
    let bob_sync = sync(&server, &bob, &format!("since={bob_since}")).await;
    assert!(
        presence_senders(&bob_sync).contains(&alice.user_id),
        "the new member sees the existing member's presence: {bob_sync}"
    );
    // Told once: the next incremental sync has no presence for either.
    let next = bob_sync["next_batch"].as_str().unwrap();
    let again = sync(&server, &bob, &format!("since={next}")).await;
    assert!(
        presence_senders(&again).is_empty(),
        "no repeat of unchanged presence: {again}"
    );
}

#[tokio::test]
async fn events_carry_the_viewers_membership_at_them() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    let before = send_text(&server, &alice, &room, "t1", "before bob").await;
    join(&server, &bob, &room).await;
    let after = send_text(&server, &alice, &room, "t2", "after bob").await;

    let membership_in = |events: &[Value], id: &str| -> String {
        events
            .iter()
            .find(|e| e["event_id"] == id)
            .map(|e| {
                e["unsigned"]["membership"]
                    .as_str()
                    .unwrap_or("absent")
                    .to_owned()
            })
            .unwrap_or_else(|| format!("{id} missing"))
    };
    let body = sync(&server, &bob, "").await;
    let timeline = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(membership_in(&timeline, &before), "leave", "{body}");
    assert_eq!(membership_in(&timeline, &after), "join", "{body}");
    let own_join = timeline
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str())
        .unwrap();
    assert_eq!(own_join["unsigned"]["membership"], "join");
    // Alice was joined for all of it.
    let alice_body = sync(&server, &alice, "").await;
    let alice_timeline = alice_body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(membership_in(&alice_timeline, &before), "join");

    // `/messages` says the same.
    let (status, messages) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    let chunk = messages["chunk"].as_array().unwrap();
    assert_eq!(membership_in(chunk, &before), "leave");
    assert_eq!(membership_in(chunk, &after), "join");
}

#[tokio::test]
async fn deleted_account_data_reaches_incremental_sync_and_then_is_gone() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let global = format!(
        "/_matrix/client/v3/user/{}/account_data/a.test",
        alice.user_id
    );
    let in_room = format!(
        "/_matrix/client/v3/user/{}/rooms/{room}/account_data/a.test",
        alice.user_id
    );
    for path in [&global, &in_room] {
        let (status, body) = server
            .put(path, Some(&alice.token), json!({ "k": 1 }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let since = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let unstable = "/_matrix/client/unstable/org.matrix.msc3391/user";
    for path in [
        format!("{unstable}/{}/account_data/a.test", alice.user_id),
        format!(
            "{unstable}/{}/rooms/{room}/account_data/a.test",
            alice.user_id
        ),
    ] {
        let (status, body) = server
            .request(reqwest::Method::DELETE, &path, Some(&alice.token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Someone else's account data cannot be deleted.
    let bob = server.register("bob", "pw").await;
    let (status, _) = server
        .request(
            reqwest::Method::DELETE,
            &format!("{unstable}/{}/account_data/a.test", alice.user_id),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let find = |events: &Value| -> Option<Value> {
        events["events"]
            .as_array()?
            .iter()
            .find(|e| e["type"] == "a.test")
            .map(|e| e["content"].clone())
    };
    let incremental = sync(&server, &alice, &format!("since={since}")).await;
    assert_eq!(
        find(&incremental["account_data"]),
        Some(json!({})),
        "{incremental}"
    );
    assert_eq!(
        find(&incremental["rooms"]["join"][&room]["account_data"]),
        Some(json!({})),
        "{incremental}"
    );
    for path in [&global, &in_room] {
        assert_error(
            &server.get(path, Some(&alice.token)).await,
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
        );
    }
    let initial = sync(&server, &alice, "").await;
    assert_eq!(find(&initial["account_data"]), None, "{initial}");
    assert_eq!(find(&initial["rooms"]["join"][&room]["account_data"]), None);
}

#[tokio::test]
async fn state_after_is_the_state_at_the_end_of_the_timeline() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    join(&server, &bob, &room).await;
    send_text(&server, &bob, &room, "t1", "hi").await;
    let lazy = "filter=%7B%22room%22%3A%7B%22state%22%3A%7B%22lazy_load_members%22%3Atrue%7D%7D%7D";
    let initial = sync(&server, &alice, &format!("use_state_after=true&{lazy}")).await;
    let joined = &initial["rooms"]["join"][&room];
    assert!(
        joined.get("state").is_none(),
        "state_after replaces state: {joined}"
    );
    let state_after = joined["state_after"]["events"].as_array().unwrap();
    let members: Vec<&str> = state_after
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(&bob.user_id.as_str()) && members.contains(&alice.user_id.as_str()),
        "every timeline sender's membership, even those in the timeline: {joined}"
    );

    // Incremental: only what changed up to the end of the timeline, the new name included.
    let since = initial["next_batch"].as_str().unwrap();
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&alice.token),
            json!({ "name": "Renamed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let incremental = sync(
        &server,
        &alice,
        &format!("use_state_after=true&since={since}"),
    )
    .await;
    let state_after = incremental["rooms"]["join"][&room]["state_after"]["events"]
        .as_array()
        .unwrap();
    assert_eq!(state_after.len(), 1, "{incremental}");
    assert_eq!(state_after[0]["content"]["name"], "Renamed");
    // Without the flag, the old shape: the name is in the timeline, not in `state`.
    let classic = sync(&server, &alice, &format!("since={since}")).await;
    assert_eq!(
        classic["rooms"]["join"][&room]["state"]["events"],
        json!([]),
        "{classic}"
    );
}

#[tokio::test]
async fn a_left_room_in_incremental_sync_has_only_its_timeline() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    join(&server, &bob, &room).await;
    let since = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    leave(&server, &alice, &room).await;
    let left = sync(&server, &alice, &format!("since={since}")).await;
    let entry = &left["rooms"]["leave"][&room];
    assert_eq!(entry["state"]["events"], json!([]), "{left}");
    let timeline = entry["timeline"]["events"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{left}");
    assert_eq!(timeline[0]["content"]["membership"], "leave");

    // An initial sync with `include_leave` and no timeline gives the state at the leave.
    let filter = "filter=%7B%22room%22%3A%7B%22include_leave%22%3Atrue%2C%22timeline%22%3A%7B%22limit%22%3A0%7D%7D%7D";
    let initial = sync(&server, &alice, filter).await;
    let entry = &initial["rooms"]["leave"][&room];
    assert_eq!(entry["timeline"]["events"], json!([]), "{initial}");
    let own = entry["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == alice.user_id.as_str())
        .cloned();
    assert_eq!(own.unwrap()["content"]["membership"], "leave");
}
