//! Server notices through Synapse's admin endpoint: admins only, one notices room per user,
//! an invite that cannot be rejected, re-invites into the same room, idempotent transactions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error};

/// An admin account, made as `hearth user create --admin` makes it, then logged in.
async fn admin(server: &TestServer) -> TestUser {
    let services = server.services();
    let reply = tokio::task::spawn_blocking(move || {
        hearth::admin::execute(
            &services,
            hearth::admin::AdminCommand::CreateUser {
                name: "root".into(),
                admin: true,
                password: "rootpw".into(),
            },
        )
    })
    .await
    .unwrap();
    assert!(
        matches!(reply, hearth::admin::AdminReply::Created { .. }),
        "{reply:?}"
    );
    let (status, body) = server.login("root", "rootpw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    TestUser {
        user_id: body["user_id"].as_str().unwrap().to_owned(),
        password: "rootpw".into(),
        token: body["access_token"].as_str().unwrap().to_owned(),
        device_id: body["device_id"].as_str().unwrap().to_owned(),
    }
}

async fn notice(server: &TestServer, admin: &TestUser, to: &TestUser, txn: Option<&str>) -> Value {
    let body = json!({ "user_id": to.user_id, "content": { "msgtype": "m.text", "body": "maintenance at noon" } });
    let (status, response) = match txn {
        Some(txn) => {
            server
                .put(
                    &format!("/_synapse/admin/v1/send_server_notice/{txn}"),
                    Some(&admin.token),
                    body,
                )
                .await
        }
        None => {
            server
                .post(
                    "/_synapse/admin/v1/send_server_notice",
                    Some(&admin.token),
                    body,
                )
                .await
        }
    };
    assert_eq!(status, StatusCode::OK, "{response}");
    response
}

/// The rooms the user is invited to, by the notices user.
async fn notice_invites(server: &TestServer, user: &TestUser) -> Vec<String> {
    let (status, sync) = server
        .get("/_matrix/client/v3/sync?timeout=0", Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{sync}");
    sync["rooms"]["invite"]
        .as_object()
        .map(|rooms| {
            rooms
                .iter()
                .filter(|(_, room)| {
                    room["invite_state"]["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| {
                            e["type"] == "m.room.member" && e["sender"] == "@_server:localhost"
                        })
                })
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn admins_send_notices_into_one_room_per_user() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let alice = server.register("alice", "pw").await;

    // Not an admin: refused, nothing sent.
    let (status, body) = server
        .post(
            "/_synapse/admin/v1/send_server_notice",
            Some(&alice.token),
            json!({ "user_id": alice.user_id, "content": { "msgtype": "m.text", "body": "x" } }),
        )
        .await;
    assert_error(&(status, body), StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert!(notice_invites(&server, &alice).await.is_empty());

    let first = notice(&server, &root, &alice, None).await;
    let rooms = notice_invites(&server, &alice).await;
    assert_eq!(rooms.len(), 1, "one notices room");
    let room = &rooms[0];

    // The invite cannot be rejected.
    assert_error(
        &server
            .post(
                &format!("/_matrix/client/v3/rooms/{room}/leave"),
                Some(&alice.token),
                json!({}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM",
    );
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, event) = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/event/{}",
                first["event_id"].as_str().unwrap()
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["content"]["body"], "maintenance at noon");
    assert_eq!(event["sender"], "@_server:localhost");
    // Tagged for clients, and read-only for the user.
    let (_, tags) = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/rooms/{room}/tags",
                alice.user_id
            ),
            Some(&alice.token),
        )
        .await;
    assert!(tags["tags"]["m.server_notice"].is_object(), "{tags}");
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/t1"),
            Some(&alice.token),
            json!({ "msgtype": "m.text", "body": "reply" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Once joined she may leave; the next notice re-invites her into the same room.
    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    notice(&server, &root, &alice, None).await;
    assert_eq!(notice_invites(&server, &alice).await, vec![room.clone()]);

    // A transaction id makes the request idempotent.
    let once = notice(&server, &root, &alice, Some("n1")).await;
    let twice = notice(&server, &root, &alice, Some("n1")).await;
    assert_eq!(once["event_id"], twice["event_id"]);

    // Unknown users and users of other servers are refused.
    let (status, body) = server
        .post(
            "/_synapse/admin/v1/send_server_notice",
            Some(&root.token),
            json!({ "user_id": "@nobody:localhost", "content": { "body": "x" } }),
        )
        .await;
    assert_error(&(status, body), StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (status, body) = server
        .post(
            "/_synapse/admin/v1/send_server_notice",
            Some(&root.token),
            json!({ "user_id": "@bob:elsewhere.example", "content": { "body": "x" } }),
        )
        .await;
    assert_error(&(status, body), StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}
