//! Device keys, one-time keys and fallback keys: upload, query, claim, counts in `/sync`, and
//! the errors that change nothing.

use reqwest::StatusCode;
use serde_json::json;

use super::{SigningKey, device_keys, sync, upload};
use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn keys_are_uploaded_queried_and_claimed_in_order() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let key = SigningKey::new(&alice.device_id);
    let keys = device_keys(&alice, &key);
    let (status, body) = upload(
        &server,
        &alice,
        json!({
            "device_keys": keys,
            "one_time_keys": {
                "signed_curve25519:BBB": { "key": "second-by-name", "signatures": {} },
            },
            "fallback_keys": {
                "signed_curve25519:FB1": { "key": "fallback", "fallback": true, "signatures": {} },
            },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 1);
    // Uploaded later, claimed later, whatever its name.
    let (_, body) = upload(
        &server,
        &alice,
        json!({ "one_time_keys": { "signed_curve25519:AAA": { "key": "first-by-name", "signatures": {} } } }),
    )
    .await;
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 2);
    let synced = sync(&server, &alice, None).await;
    assert_eq!(synced["device_one_time_keys_count"]["signed_curve25519"], 2);
    assert_eq!(
        synced["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );

    let (status, query) = server
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob.token),
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{query}");
    let shown = &query["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(shown["keys"], keys["keys"]);
    assert_eq!(
        shown["signatures"], keys["signatures"],
        "signatures kept as given"
    );
    assert!(shown["unsigned"].is_object(), "{shown}");

    let claim = json!({ "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): "signed_curve25519" } } });
    let mut claimed = Vec::new();
    for _ in 0..4 {
        let (status, body) = server
            .post(
                "/_matrix/client/v3/keys/claim",
                Some(&bob.token),
                claim.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let keys = body["one_time_keys"][&alice.user_id][&alice.device_id]
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(keys.len(), 1);
        claimed.push(keys.keys().next().unwrap().clone());
    }
    assert_eq!(
        claimed,
        [
            "signed_curve25519:BBB",
            "signed_curve25519:AAA",
            "signed_curve25519:FB1",
            "signed_curve25519:FB1"
        ],
        "one-time keys in upload order, then the fallback key"
    );
    let synced = sync(&server, &alice, None).await;
    assert!(
        synced["device_one_time_keys_count"]
            .get("signed_curve25519")
            .is_none_or(|n| n == 0)
    );
    assert_eq!(
        synced["device_unused_fallback_key_types"],
        json!([]),
        "the fallback key was used"
    );
    // New identity keys for the device replace the old ones (as in Synapse).
    let replacement = device_keys(&alice, &SigningKey::new(&alice.device_id));
    let (status, _) = upload(&server, &alice, json!({ "device_keys": replacement })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, query) = server
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob.token),
            json!({ "device_keys": { alice.user_id.clone(): [alice.device_id.clone()] } }),
        )
        .await;
    assert_eq!(
        query["device_keys"][&alice.user_id][&alice.device_id]["keys"],
        replacement["keys"]
    );
    // Users on other servers get no keys yet, and failures say so.
    let (_, query) = server
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob.token),
            json!({ "device_keys": { "@zed:elsewhere.example": [] } }),
        )
        .await;
    assert!(
        query["failures"]["elsewhere.example"].is_object(),
        "{query}"
    );
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let key = SigningKey::new(&alice.device_id);
    let (status, _) = upload(
        &server,
        &alice,
        json!({
            "device_keys": device_keys(&alice, &key),
            "one_time_keys": { "signed_curve25519:K1": { "key": "one", "signatures": {} } },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let before = sync(&server, &alice, None).await["device_one_time_keys_count"].clone();

    // Keys claiming to be another user's device.
    let response = upload(
        &server,
        &bob,
        json!({ "device_keys": device_keys(&alice, &key) }),
    )
    .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // Missing required fields.
    let response = upload(
        &server,
        &alice,
        json!({ "device_keys": { "user_id": alice.user_id, "device_id": alice.device_id } }),
    )
    .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // The same one-time key id with a different key, next to a new key: neither is stored.
    let response = upload(
        &server,
        &alice,
        json!({ "one_time_keys": {
            "signed_curve25519:K1": { "key": "changed", "signatures": {} },
            "signed_curve25519:K2": { "key": "new", "signatures": {} },
        } }),
    )
    .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // Malformed key ids.
    let response = upload(
        &server,
        &alice,
        json!({ "one_time_keys": { "no-colon": {} } }),
    )
    .await;
    assert_eq!(response.0, StatusCode::BAD_REQUEST, "{}", response.1);

    assert_eq!(
        sync(&server, &alice, None).await["device_one_time_keys_count"],
        before,
        "nothing changed"
    );
    let (_, query) = server
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&alice.token),
            json!({ "device_keys": { alice.user_id.clone(): [] } }),
        )
        .await;
    assert_eq!(
        query["device_keys"][&alice.user_id][&alice.device_id]["keys"],
        device_keys(&alice, &key)["keys"],
        "the first identity stays"
    );
}

#[tokio::test]
async fn concurrent_claims_never_share_a_key() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let mut keys = serde_json::Map::new();
    for n in 0..20 {
        keys.insert(
            format!("signed_curve25519:K{n:02}"),
            json!({ "key": format!("key{n}"), "signatures": {} }),
        );
    }
    let (status, _) = upload(&server, &alice, json!({ "one_time_keys": keys })).await;
    assert_eq!(status, StatusCode::OK);
    let claim = json!({ "one_time_keys": { alice.user_id.clone(): { alice.device_id.clone(): "signed_curve25519" } } });
    let claims = (0..20).map(|_| {
        let (server, token, claim) = (&server, bob.token.clone(), claim.clone());
        async move {
            server
                .post("/_matrix/client/v3/keys/claim", Some(&token), claim)
                .await
        }
    });
    let results = futures::future::join_all(claims).await;
    let mut ids: Vec<String> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::OK);
            body["one_time_keys"][&alice.user_id][&alice.device_id]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every claim got its own key");
}
