//! Room aliases and the room's `m.room.canonical_alias` event.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, create_room, public_room};

async fn put_alias(server: &TestServer, user: &TestUser, alias: &str, room: &str) {
    let (status, body) = server
        .put(
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                alias.replace('#', "%23")
            ),
            Some(&user.token),
            json!({ "room_id": room }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn delete_alias(server: &TestServer, user: &TestUser, alias: &str) {
    let (status, body) = server
        .request(
            Method::DELETE,
            &format!(
                "/_matrix/client/v3/directory/room/{}",
                alias.replace('#', "%23")
            ),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The canonical alias event's content and id.
async fn canonical(server: &TestServer, user: &TestUser, room: &str) -> (Value, String) {
    let (status, body) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/?format=event"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["content"].clone(),
        body["event_id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Complement's "Can delete canonical alias": deleting an alias takes it out of the canonical
/// alias event, as Synapse does.
#[tokio::test]
async fn deleting_an_alias_takes_it_out_of_the_canonical_alias_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    for alias in ["#main:localhost", "#alt:localhost", "#spare:localhost"] {
        put_alias(&server, &alice, alias, &room).await;
    }
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"),
            Some(&alice.token),
            json!({ "alias": "#main:localhost", "alt_aliases": ["#main:localhost", "#alt:localhost"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An alias the event does not name changes nothing.
    let (_, before) = canonical(&server, &alice, &room).await;
    delete_alias(&server, &alice, "#spare:localhost").await;
    assert_eq!(
        canonical(&server, &alice, &room).await.1,
        before,
        "no new event"
    );

    delete_alias(&server, &alice, "#main:localhost").await;
    let (content, _) = canonical(&server, &alice, &room).await;
    assert_eq!(content, json!({ "alt_aliases": ["#alt:localhost"] }));
    delete_alias(&server, &alice, "#alt:localhost").await;
    let (content, _) = canonical(&server, &alice, &room).await;
    assert_eq!(content, json!({}));
}

/// Complement's "Alias creators can delete canonical alias with no ops": the alias goes; the
/// event stays as it is, since its creator may not change it.
#[tokio::test]
async fn an_alias_creator_without_power_deletes_the_alias_but_not_the_event() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    put_alias(&server, &bob, "#bobs:localhost", &room).await;
    let (status, body) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias/"),
            Some(&alice.token),
            json!({ "alias": "#bobs:localhost" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = canonical(&server, &alice, &room).await;
    delete_alias(&server, &bob, "#bobs:localhost").await;
    let (status, _) = server
        .get("/_matrix/client/v3/directory/room/%23bobs:localhost", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (content, after) = canonical(&server, &alice, &room).await;
    assert_eq!(after, before, "bob may not send the event: {content}");
}
