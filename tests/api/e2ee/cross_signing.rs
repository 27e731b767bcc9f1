//! Cross-signing: uploading master, self-signing and user-signing keys (signatures checked;
//! re-uploads need the password), who sees which key, and uploaded signatures.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{SigningKey, device_keys, upload};
use crate::common::{TestServer, TestUser, assert_error};

struct CrossSigning {
    master: SigningKey,
    self_signing: SigningKey,
    user_signing: SigningKey,
}

fn cross_signing_key(user: &TestUser, usage: &str, key: &SigningKey) -> Value {
    json!({
        "user_id": user.user_id,
        "usage": [usage],
        "keys": { format!("ed25519:{}", key.public()): key.public() },
    })
}

impl CrossSigning {
    fn new() -> Self {
        CrossSigning {
            master: SigningKey::new("master"),
            self_signing: SigningKey::new("self"),
            user_signing: SigningKey::new("user"),
        }
    }
}

/// A key object named after its public key and signed by the master key.
fn signed_by_master(user: &TestUser, usage: &str, key: &SigningKey, master: &SigningKey) -> Value {
    let object = cross_signing_key(user, usage, key);
    master_sign(user, master, object)
}

/// Signs `object` for `user` with the master key under its public-key name.
fn master_sign(user: &TestUser, master: &SigningKey, object: Value) -> Value {
    let signed = master.sign(&user.user_id, object);
    rename_signature(
        signed,
        &user.user_id,
        &master.key_id(),
        &format!("ed25519:{}", master.public()),
    )
}

/// Moves a signature to the key id clients use (the public key), keeping its value.
fn rename_signature(mut object: Value, user: &str, from: &str, to: &str) -> Value {
    let signatures = object["signatures"][user].as_object_mut().unwrap();
    let signature = signatures.remove(from).unwrap();
    signatures.insert(to.to_owned(), signature);
    object
}

async fn upload_signing(server: &TestServer, user: &TestUser, body: Value) -> (StatusCode, Value) {
    server
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&user.token),
            body,
        )
        .await
}

#[tokio::test]
async fn cross_signing_keys_are_checked_shown_and_signed() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let keys = CrossSigning::new();
    let device_key = SigningKey::new(&alice.device_id);
    let (status, _) = upload(
        &server,
        &alice,
        json!({ "device_keys": device_keys(&alice, &device_key) }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A self-signing key the master key did not sign is refused, and nothing is stored.
    let forged = rename_signature(
        keys.user_signing.sign(
            &alice.user_id,
            cross_signing_key(&alice, "self_signing", &keys.self_signing),
        ),
        &alice.user_id,
        &keys.user_signing.key_id(),
        &format!("ed25519:{}", keys.master.public()),
    );
    let response = upload_signing(
        &server,
        &alice,
        json!({
            "master_key": cross_signing_key(&alice, "master", &keys.master),
            "self_signing_key": forged,
        }),
    )
    .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE");

    // The first upload needs no password.
    let upload_body = json!({
        "master_key": cross_signing_key(&alice, "master", &keys.master),
        "self_signing_key": signed_by_master(&alice, "self_signing", &keys.self_signing, &keys.master),
        "user_signing_key": signed_by_master(&alice, "user_signing", &keys.user_signing, &keys.master),
    });
    let (status, body) = upload_signing(&server, &alice, upload_body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Uploading the same keys again (a client retrying) needs none either (MSC3967).
    let (status, body) = upload_signing(&server, &alice, upload_body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Replacing them does, and nothing changes without it.
    let other = CrossSigning::new();
    let (status, body) = upload_signing(
        &server,
        &alice,
        json!({ "master_key": cross_signing_key(&alice, "master", &other.master) }),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["flows"].is_array());

    let query = |viewer: &TestUser| {
        let (server, token, user) = (&server, viewer.token.clone(), alice.user_id.clone());
        async move {
            let (status, body) = server
                .post(
                    "/_matrix/client/v3/keys/query",
                    Some(&token),
                    json!({ "device_keys": { user: [] } }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let seen_by_bob = query(&bob).await;
    assert_eq!(
        seen_by_bob["master_keys"][&alice.user_id]["usage"],
        json!(["master"])
    );
    assert_eq!(
        seen_by_bob["self_signing_keys"][&alice.user_id]["usage"],
        json!(["self_signing"])
    );
    assert!(
        seen_by_bob["user_signing_keys"]
            .get(&alice.user_id)
            .is_none(),
        "user-signing keys only to their owner"
    );
    let seen_by_alice = query(&alice).await;
    assert_eq!(
        seen_by_alice["user_signing_keys"][&alice.user_id]["usage"],
        json!(["user_signing"])
    );

    // Alice signs her device with her self-signing key; a forged signature is a failure.
    let device = seen_by_alice["device_keys"][&alice.user_id][&alice.device_id].clone();
    let mut unsigned_device = device.clone();
    unsigned_device.as_object_mut().unwrap().remove("unsigned");
    let signed_device = rename_signature(
        keys.self_signing
            .sign(&alice.user_id, unsigned_device.clone()),
        &alice.user_id,
        &keys.self_signing.key_id(),
        &format!("ed25519:{}", keys.self_signing.public()),
    );
    let forged_device = rename_signature(
        keys.user_signing.sign(&alice.user_id, unsigned_device),
        &alice.user_id,
        &keys.user_signing.key_id(),
        &format!("ed25519:{}", keys.self_signing.public()),
    );
    let (status, body) = server
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            Some(&alice.token),
            json!({ alice.user_id.clone(): { alice.device_id.clone(): forged_device } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["failures"][&alice.user_id][&alice.device_id]["errcode"],
        "M_INVALID_SIGNATURE"
    );
    let (status, body) = server
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            Some(&alice.token),
            json!({ alice.user_id.clone(): { alice.device_id.clone(): signed_device } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["failures"].as_object().is_none_or(|f| f.is_empty()),
        "{body}"
    );
    let seen_by_bob = query(&bob).await;
    let signatures =
        &seen_by_bob["device_keys"][&alice.user_id][&alice.device_id]["signatures"][&alice.user_id];
    assert!(
        signatures
            .get(format!("ed25519:{}", keys.self_signing.public()))
            .is_some(),
        "bob sees the self-signing signature on alice's device: {signatures}"
    );
    assert!(
        signatures
            .get(format!("ed25519:{}", alice.device_id))
            .is_some(),
        "and the device's own"
    );
}
