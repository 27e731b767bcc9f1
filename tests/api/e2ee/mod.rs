//! End-to-end encryption over HTTP: device, one-time and fallback keys, device lists in
//! `/sync` and `/keys/changes`, cross-signing with real ed25519 signatures, key backup.

mod backup;
mod cross_signing;
mod device_lists;
mod keys;

use reqwest::StatusCode;
use ruma::{
    CanonicalJsonObject,
    serde::{Base64, base64::Standard},
    signatures::{Ed25519KeyPair, sign_json},
};
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser};

/// An ed25519 key for signing test objects.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl SigningKey {
    pub fn new(version: &str) -> Self {
        let der = Ed25519KeyPair::generate();
        SigningKey {
            pair: Ed25519KeyPair::from_der(&der, version.to_owned()).unwrap(),
        }
    }

    /// The public key, unpadded base64 (also the key's name in cross-signing).
    pub fn public(&self) -> String {
        Base64::<Standard>::new(self.pair.public_key().to_vec()).encode()
    }

    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair.version())
    }

    /// `object` signed by `entity` with this key.
    pub fn sign(&self, entity: &str, object: Value) -> Value {
        let mut canonical: CanonicalJsonObject = serde_json::from_value(object).unwrap();
        sign_json(entity, &self.pair, &mut canonical).unwrap();
        serde_json::to_value(canonical).unwrap()
    }
}

/// Device keys of the user's device, signed by its own ed25519 key.
pub fn device_keys(user: &TestUser, key: &SigningKey) -> Value {
    key.sign(
        &user.user_id,
        json!({
            "user_id": user.user_id,
            "device_id": user.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{}", user.device_id): "curve+key+of+the+device",
                format!("ed25519:{}", user.device_id): key.public(),
            },
        }),
    )
}

/// `POST /keys/upload`; returns the response.
pub async fn upload(server: &TestServer, user: &TestUser, body: Value) -> (StatusCode, Value) {
    server
        .post("/_matrix/client/v3/keys/upload", Some(&user.token), body)
        .await
}

/// A sync (`since` optional); returns the body.
pub async fn sync(server: &TestServer, user: &TestUser, since: Option<&str>) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
        None => "/_matrix/client/v3/sync".to_owned(),
    };
    let (status, body) = server.get(&path, Some(&user.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
