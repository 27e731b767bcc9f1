//! `POST /search`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, send_text};

async fn search(
    server: &TestServer,
    user: &TestUser,
    criteria: Value,
    next: Option<&str>,
) -> Value {
    let path = match next {
        Some(next) => format!("/_matrix/client/v3/search?next_batch={next}"),
        None => "/_matrix/client/v3/search".to_owned(),
    };
    let (status, body) = server
        .post(
            &path,
            Some(&user.token),
            json!({ "search_categories": { "room_events": criteria } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["search_categories"]["room_events"].clone()
}

fn ids(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn full_text_search_respects_membership_redaction_and_paging() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "name": "Kitchen" }),
        )
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    let first = send_text(&server, &alice, &room, "1", "Warm bread in the oven").await;
    let second = send_text(&server, &alice, &room, "2", "the BREAD is warm now").await;
    let _other = send_text(&server, &alice, &room, "3", "cold soup").await;
    let secret = send_text(&server, &alice, &room, "4", "secret bread recipe").await;

    let found = search(
        &server,
        &alice,
        json!({ "search_term": "warm bread", "order_by": "recent" }),
        None,
    )
    .await;
    assert_eq!(
        ids(&found),
        vec![second.clone(), first.clone()],
        "both words, newest first"
    );
    assert_eq!(found["count"], 2);
    let highlights: Vec<&str> = found["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(highlights, vec!["bread", "warm"]);

    // Redacted content is no longer found.
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{secret}/r1"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let found = search(&server, &alice, json!({ "search_term": "recipe" }), None).await;
    assert_eq!(ids(&found), Vec::<String>::new());

    // Paging with next_batch.
    let criteria =
        json!({ "search_term": "bread", "order_by": "recent", "filter": { "limit": 1 } });
    let page = search(&server, &alice, criteria.clone(), None).await;
    assert_eq!(ids(&page), vec![second.clone()]);
    let next = page["next_batch"].as_str().unwrap().to_owned();
    let page = search(&server, &alice, criteria.clone(), Some(&next)).await;
    assert_eq!(ids(&page), vec![first.clone()]);
    // A full page always has a token (as in Synapse); the page after the last hit is empty
    // and has none.
    let next = page["next_batch"].as_str().unwrap().to_owned();
    let page = search(&server, &alice, criteria, Some(&next)).await;
    assert_eq!(ids(&page), Vec::<String>::new());
    assert!(page.get("next_batch").is_none());

    // Context and state.
    let found = search(
        &server,
        &alice,
        json!({ "search_term": "oven", "event_context": { "before_limit": 1, "after_limit": 1, "include_profile": true }, "include_state": true }),
        None,
    )
    .await;
    let context = &found["results"][0]["context"];
    assert_eq!(context["events_after"][0]["event_id"], second.as_str());
    assert_eq!(
        context["profile_info"][&alice.user_id]["displayname"],
        "alice"
    );
    assert!(
        found["state"][&room]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name")
    );
    let found = search(
        &server,
        &alice,
        json!({ "search_term": "kitchen", "keys": ["content.name"] }),
        None,
    )
    .await;
    assert_eq!(found["count"], 1);

    // Someone outside the room finds nothing.
    let found = search(&server, &bob, json!({ "search_term": "bread" }), None).await;
    assert_eq!(found["count"], 0);
}
