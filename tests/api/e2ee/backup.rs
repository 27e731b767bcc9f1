//! Key backup: versions, keys with the spec's replacement rules, etag and count, the wrong
//! version error, deletion.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, assert_error};

fn key(first_message_index: u64, forwarded_count: u64, is_verified: bool, tag: &str) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": { "ephemeral": "AAAA", "ciphertext": tag, "mac": "BBBB" },
    })
}

#[tokio::test]
async fn backups_keep_the_better_key() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let token = Some(alice.token.as_str());
    let algorithm = json!({
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
        "auth_data": { "public_key": "abcdefg", "signatures": {} },
    });
    let none = server
        .get("/_matrix/client/v3/room_keys/version", token)
        .await;
    assert_error(&none, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (status, created) = server
        .post(
            "/_matrix/client/v3/room_keys/version",
            token,
            algorithm.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let version = created["version"].as_str().unwrap().to_owned();

    let session =
        |tag: &str| format!("/_matrix/client/v3/room_keys/keys/!room:localhost/sess?version={tag}");
    let put = |body: Value| {
        let (server, path) = (&server, session(&version));
        async move { server.put(&path, token, body).await }
    };
    let (status, first) = put(key(5, 2, false, "first")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["count"], 1);
    let stored = |_: &TestServer| {
        let (server, path) = (&server, session(&version));
        async move {
            let (status, body) = server.get(&path, token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["session_data"]["ciphertext"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // Worse keys do not replace it; better ones do, in the spec's order.
    let (_, worse) = put(key(6, 0, false, "higher index")).await;
    assert_eq!(worse["etag"], first["etag"], "nothing changed, same etag");
    assert_eq!(stored(&server).await, "first");
    put(key(5, 1, false, "fewer hops")).await;
    assert_eq!(stored(&server).await, "fewer hops");
    put(key(4, 9, false, "lower index")).await;
    assert_eq!(stored(&server).await, "lower index");
    let (_, verified) = put(key(9, 9, true, "verified")).await;
    assert_eq!(stored(&server).await, "verified");
    assert_ne!(verified["etag"], first["etag"]);
    put(key(0, 0, false, "unverified")).await;
    assert_eq!(
        stored(&server).await,
        "verified",
        "an unverified key never replaces a verified one"
    );

    let (_, info) = server
        .get(
            &format!("/_matrix/client/v3/room_keys/version/{version}"),
            token,
        )
        .await;
    assert_eq!(info["count"], 1);
    assert_eq!(info["algorithm"], algorithm["algorithm"]);
    assert_eq!(info["auth_data"], algorithm["auth_data"]);
    let (_, all) = server
        .get(
            &format!("/_matrix/client/v3/room_keys/keys?version={version}"),
            token,
        )
        .await;
    assert_eq!(
        all["rooms"]["!room:localhost"]["sessions"]["sess"]["is_verified"],
        true
    );

    // A newer version takes over: the old one takes no more keys.
    let (_, newer) = server
        .post("/_matrix/client/v3/room_keys/version", token, algorithm)
        .await;
    let newer = newer["version"].as_str().unwrap().to_owned();
    let stale = put(key(0, 0, true, "late")).await;
    assert_error(&stale, StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(stale.1["current_version"], newer.as_str());
    let unknown = server
        .put(&session("999"), token, key(0, 0, true, "nowhere"))
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let (status, _) = server
        .request(
            Method::DELETE,
            &format!("/_matrix/client/v3/room_keys/version/{version}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let gone = server
        .get(
            &format!("/_matrix/client/v3/room_keys/version/{version}"),
            token,
        )
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (_, latest) = server
        .get("/_matrix/client/v3/room_keys/version", token)
        .await;
    assert_eq!(latest["version"], newer.as_str());
}

/// A version whose algorithm is not `{"algorithm": name, "auth_data": {…}}` is refused, and
/// nothing is stored: the user's devices can still read the current version.
#[tokio::test]
async fn malformed_backup_versions_are_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let good = json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "cHVibGlj" } });
    let (status, created) = server
        .post(
            "/_matrix/client/v3/room_keys/version",
            Some(&alice.token),
            good,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let version = created["version"].as_str().unwrap().to_owned();
    for (body, errcode) in [
        (json!({ "auth_data": {} }), "M_MISSING_PARAM"),
        (
            json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2" }),
            "M_MISSING_PARAM",
        ),
        (json!({ "algorithm": 7, "auth_data": {} }), "M_BAD_JSON"),
        (
            json!({ "algorithm": "x", "auth_data": "text" }),
            "M_BAD_JSON",
        ),
    ] {
        let refused = server
            .post(
                "/_matrix/client/v3/room_keys/version",
                Some(&alice.token),
                body.clone(),
            )
            .await;
        assert_error(&refused, StatusCode::BAD_REQUEST, errcode);
        let refused = server
            .put(
                &format!("/_matrix/client/v3/room_keys/version/{version}"),
                Some(&alice.token),
                body,
            )
            .await;
        assert_eq!(refused.0, StatusCode::BAD_REQUEST, "{}", refused.1);
    }
    let (status, latest) = server
        .get("/_matrix/client/v3/room_keys/version", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    assert_eq!(latest["version"], version.as_str());
    assert_eq!(latest["auth_data"]["public_key"], "cHVibGlj");
}
