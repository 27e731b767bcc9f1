//! `/sync`: initial and incremental sync, long-polling, invite/leave sections, gaps, filters,
//! and tokens that survive a restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, create_room, public_room, send_text, timeline_bodies};

async fn sync(server: &TestServer, user: &TestUser, query: &str) -> Value {
    let (status, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?{query}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn initial_then_incremental_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({ "name": "Sync" })).await;
    send_text(&server, &alice, &room, "1", "one").await;

    let initial = sync(&server, &alice, "").await;
    let joined = &initial["rooms"]["join"][&room];
    assert_eq!(timeline_bodies(&initial, &room), vec!["one"]);
    let all: Vec<&Value> = joined["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(joined["state"]["events"].as_array().unwrap())
        .collect();
    assert!(
        all.iter().any(|e| e["type"] == "m.room.create"),
        "state or timeline has the create event"
    );
    assert!(all.iter().any(|e| e["type"] == "m.room.name"));
    assert_eq!(joined["summary"]["m.joined_member_count"], 1);
    let token = initial["next_batch"].as_str().unwrap().to_owned();

    send_text(&server, &alice, &room, "2", "two").await;
    send_text(&server, &alice, &room, "3", "three").await;
    let next = sync(&server, &alice, &format!("since={token}")).await;
    assert_eq!(timeline_bodies(&next, &room), vec!["two", "three"]);
    assert_eq!(
        next["rooms"]["join"][&room]["timeline"]["events"][0]["unsigned"]["transaction_id"],
        "2"
    );
    let token = next["next_batch"].as_str().unwrap().to_owned();
    let again = sync(&server, &alice, &format!("since={token}&timeout=0")).await;
    assert!(
        again["rooms"]["join"].as_object().unwrap().is_empty(),
        "nothing repeated: {again}"
    );
}

#[tokio::test]
async fn a_pending_long_poll_returns_as_soon_as_a_message_arrives() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let token = sync(&server, &bob, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let waiting = {
        let http = server.http.clone();
        let url = format!(
            "{}/_matrix/client/v3/sync?since={token}&timeout=20000",
            server.base
        );
        let bearer = bob.token.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = http
                .get(url)
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the long-poll waits while nothing happens"
    );
    send_text(&server, &alice, &room, "wake", "wake up").await;
    let (elapsed, body) = waiting.await.unwrap();
    assert!(
        elapsed < Duration::from_secs(15),
        "woken by the message, not by the 20 s timeout ({elapsed:?})"
    );
    assert_eq!(timeline_bodies(&body, &room), vec!["wake up"]);
}

#[tokio::test]
async fn a_quiet_long_poll_times_out_empty() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let token = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let body = sync(&server, &alice, &format!("since={token}&timeout=300")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the timeout"
    );
    assert!(body["rooms"]["join"].as_object().unwrap().is_empty());
    assert!(
        body["next_batch"].as_str().unwrap().parse::<u64>().unwrap()
            >= token.parse::<u64>().unwrap()
    );
}

#[tokio::test]
async fn invites_and_leaves_have_their_own_sections() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let token = sync(&server, &bob, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let room = create_room(
        &server,
        &alice,
        json!({ "name": "Secret", "invite": [bob.user_id] }),
    )
    .await;
    let body = sync(&server, &bob, &format!("since={token}")).await;
    let invite_state = body["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .unwrap();
    assert!(
        invite_state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Secret")
    );
    assert!(invite_state.iter().any(|e| e["type"] == "m.room.member"
        && e["state_key"] == bob.user_id.as_str()
        && e["content"]["membership"] == "invite"));
    let token = body["next_batch"].as_str().unwrap().to_owned();

    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    let body = sync(&server, &bob, &format!("since={token}")).await;
    assert!(
        body["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "state on join"
    );
    let token = body["next_batch"].as_str().unwrap().to_owned();

    send_text(&server, &alice, &room, "before-leave", "see you").await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    send_text(&server, &alice, &room, "after-leave", "not for bob").await;
    let body = sync(&server, &bob, &format!("since={token}")).await;
    let left = &body["rooms"]["leave"][&room]["timeline"]["events"];
    let texts: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(texts, vec!["see you"]);
    assert_eq!(
        left.as_array().unwrap().last().unwrap()["content"]["membership"],
        "leave"
    );
    assert!(body["rooms"]["join"].get(&room).is_none());
}

#[tokio::test]
async fn gappy_sync_is_limited_and_messages_continue_from_prev_batch() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let token = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        send_text(&server, &alice, &room, &format!("g{i}"), &format!("m{i}")).await;
    }
    let (status, created) = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            Some(&alice.token),
            json!({ "room": { "timeline": { "limit": 2 } } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let filter_id = created["filter_id"].as_str().unwrap();
    let (_, stored) = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/filter/{filter_id}",
                alice.user_id
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(stored["room"]["timeline"]["limit"], 2);

    let body = sync(
        &server,
        &alice,
        &format!("since={token}&filter={filter_id}"),
    )
    .await;
    let timeline = &body["rooms"]["join"][&room]["timeline"];
    assert_eq!(timeline["limited"], true);
    assert_eq!(timeline_bodies(&body, &room), vec!["m3", "m4"]);
    let prev_batch = timeline["prev_batch"].as_str().unwrap();
    let (_, page) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=3&from={prev_batch}"),
            Some(&alice.token),
        )
        .await;
    let older: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(older, vec!["m2", "m1", "m0"]);
    // An inline filter works the same.
    let inline = urlencode(r#"{"room":{"timeline":{"limit":1}}}"#);
    let body = sync(&server, &alice, &format!("since={token}&filter={inline}")).await;
    assert_eq!(timeline_bodies(&body, &room), vec!["m4"]);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn tokens_survive_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let token = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    send_text(&server, &alice, &room, "r1", "before restart").await;
    server.restart().await;
    send_text(&server, &alice, &room, "r2", "after restart").await;
    let body = sync(&server, &alice, &format!("since={token}")).await;
    assert_eq!(
        timeline_bodies(&body, &room),
        vec!["before restart", "after restart"]
    );
    server.stop().await;
}

#[tokio::test]
async fn lazy_loading_sends_only_the_members_the_timeline_needs() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&carol.token),
            json!({}),
        )
        .await;
    for i in 0..3 {
        send_text(&server, &bob, &room, &format!("l{i}"), "from bob").await;
    }
    let filter =
        urlencode(r#"{"room":{"timeline":{"limit":2},"state":{"lazy_load_members":true}}}"#);
    let body = sync(&server, &alice, &format!("filter={filter}")).await;
    let joined = &body["rooms"]["join"][&room];
    let members: Vec<&str> = joined["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(&bob.user_id.as_str()),
        "the sender's member event: {members:?}"
    );
    assert!(
        members.contains(&alice.user_id.as_str()),
        "the user's own member event: {members:?}"
    );
    assert!(
        !members.contains(&carol.user_id.as_str()),
        "not carol, who sent nothing in the timeline: {members:?}"
    );
    assert_eq!(
        joined["summary"]["m.joined_member_count"], 3,
        "counts still cover everyone"
    );
    // Without lazy loading every member comes.
    let body = sync(&server, &alice, "").await;
    let all = body["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .count()
        + body["rooms"]["join"][&room]["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .count();
    assert!(all >= 3, "{all}");
}

#[tokio::test]
async fn summary_counts_and_heroes_without_reading_every_member() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    // More members than one page of the member index.
    for i in 0..40 {
        let user = server.register(&format!("member{i:02}"), "pw").await;
        server
            .post(
                &format!("/_matrix/client/v3/join/{room}"),
                Some(&user.token),
                json!({}),
            )
            .await;
    }
    let invitee = server.register("zed", "pw").await;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&alice.token),
            json!({ "user_id": invitee.user_id }),
        )
        .await;
    let body = sync(
        &server,
        &alice,
        "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A1%7D%7D%7D",
    )
    .await;
    let summary = &body["rooms"]["join"][&room]["summary"];
    assert_eq!(summary["m.joined_member_count"], 41);
    assert_eq!(summary["m.invited_member_count"], 1);
    let heroes: Vec<&str> = summary["m.heroes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(
        heroes,
        vec![
            "@member00:localhost",
            "@member01:localhost",
            "@member02:localhost",
            "@member03:localhost",
            "@member04:localhost"
        ]
    );
    let leaver = server.login("member00", "pw").await.1;
    server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            leaver["access_token"].as_str(),
            json!({}),
        )
        .await;
    let body = sync(&server, &alice, "").await;
    assert_eq!(
        body["rooms"]["join"][&room]["summary"]["m.joined_member_count"],
        40
    );
    assert_eq!(
        body["rooms"]["join"][&room]["summary"]["m.heroes"][0],
        "@member01:localhost"
    );
}

#[tokio::test]
async fn account_data_presence_and_ephemeral_filters_apply() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let user = &alice.user_id;
    server
        .put(
            &format!("/_matrix/client/v3/user/{user}/account_data/org.example.keep"),
            Some(&alice.token),
            json!({ "a": 1 }),
        )
        .await;
    server
        .put(
            &format!("/_matrix/client/v3/user/{user}/account_data/org.example.drop"),
            Some(&alice.token),
            json!({ "b": 2 }),
        )
        .await;
    server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/typing/{}", bob.user_id),
            Some(&bob.token),
            json!({ "typing": true, "timeout": 10000 }),
        )
        .await;
    let filter = urlencode(
        r#"{"account_data":{"not_types":["org.example.drop"]},"presence":{"types":[]},"room":{"ephemeral":{"not_types":["m.typing"]}}}"#,
    );
    let body = sync(&server, &alice, &format!("filter={filter}")).await;
    let types: Vec<&str> = body["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // Push rules always come down an initial sync (as the `m.push_rules` account data).
    assert_eq!(types, vec!["org.example.keep", "m.push_rules"]);
    assert!(
        body["presence"]["events"].as_array().unwrap().is_empty(),
        "presence filtered out: {body}"
    );
    let ephemeral = body["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .unwrap();
    assert!(
        ephemeral.iter().all(|e| e["type"] != "m.typing"),
        "{ephemeral:?}"
    );
    // Unfiltered, both come (and the push rules).
    let body = sync(&server, &alice, "").await;
    assert_eq!(body["account_data"]["events"].as_array().unwrap().len(), 3);
    assert!(
        body["rooms"]["join"][&room]["ephemeral"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.typing")
    );
}

/// State events are served from the event cache; a redaction must replace the cached copy.
#[tokio::test]
async fn redacted_state_event_is_served_redacted_after_it_was_cached() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({ "topic": "secret plans" })).await;
    // Push the topic out of the timeline so it comes in the state section.
    for i in 0..3 {
        send_text(&server, &alice, &room, &format!("t{i}"), "filler").await;
    }
    let filter = "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A1%7D%7D%7D";
    let topic_of = |sync: &Value| -> Value {
        sync["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "m.room.topic")
            .cloned()
            .expect("topic in the state section")
    };
    let before = topic_of(&sync(&server, &alice, filter).await);
    assert_eq!(before["content"]["topic"], "secret plans");
    assert!(before["unsigned"]["age"].as_u64().is_some());
    let topic_id = before["event_id"].as_str().unwrap();
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{topic_id}/r1"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = topic_of(&sync(&server, &alice, filter).await);
    assert_eq!(after["event_id"], before["event_id"]);
    assert_eq!(after["content"], json!({}));
    assert!(after["unsigned"]["redacted_because"].is_object());
}

/// A timeline longer than what is kept in memory per room continues from storage, in order,
/// with nothing missing or repeated.
#[tokio::test]
async fn long_timelines_read_past_the_in_memory_events() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let first = sync(&server, &alice, "").await;
    let token = first["next_batch"].as_str().unwrap().to_owned();
    let sent: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();
    for (i, body) in sent.iter().enumerate() {
        send_text(&server, &alice, &room, &format!("t{i}"), body).await;
    }
    let all = "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A500%7D%7D%7D";
    let initial = sync(&server, &alice, all).await;
    let bodies = timeline_bodies(&initial, &room);
    assert_eq!(bodies, sent, "initial sync: every message once, in order");
    assert_eq!(
        initial["rooms"]["join"][&room]["timeline"]["limited"],
        false
    );
    let incremental = sync(&server, &alice, &format!("since={token}&{all}")).await;
    assert_eq!(timeline_bodies(&incremental, &room), sent);
    // Only messages, newest 70: the walk goes below the in-memory events too.
    let messages = "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A70%2C%22types%22%3A%5B%22m.room.message%22%5D%7D%7D%7D";
    let page = sync(&server, &alice, messages).await;
    assert_eq!(timeline_bodies(&page, &room), sent[50..].to_vec());
    assert_eq!(page["rooms"]["join"][&room]["timeline"]["limited"], true);
}
