//! The server's ed25519 signing key: generated at first start, stored in the `meta` table, used
//! to sign every event (and, with federation, every request).

use ruma::{OwnedServerName, serde::Base64, signatures::Ed25519KeyPair};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{Db, Table, tables},
    util::random_alphanumeric,
};

/// Stored form of the key (key: `signing_key` in `meta`).
#[derive(Serialize, Deserialize)]
pub struct StoredKey {
    /// The key version, e.g. `a1b2c3` in `ed25519:a1b2c3`.
    version: String,
    /// PKCS#8 DER document, base64.
    pkcs8: Base64,
}

const META_KEY: &str = "signing_key";

/// The server's identity for signing.
pub struct ServerKeys {
    pub server_name: OwnedServerName,
    pub key_pair: Ed25519KeyPair,
}

impl ServerKeys {
    /// Loads the signing key, creating and storing one on first start.
    pub fn load_or_create(db: &Db, server_name: OwnedServerName) -> Result<Self> {
        let meta: Table<String, StoredKey> = db.open_table(tables::SERVER_SIGNING_KEYS);
        let stored = match meta.get(&META_KEY.to_owned())? {
            Some(stored) => stored,
            None => {
                let document = Ed25519KeyPair::generate();
                let stored = StoredKey {
                    version: random_alphanumeric(8),
                    pkcs8: Base64::new(document.to_vec()),
                };
                let mut batch = db.batch();
                meta.put(&mut batch, &META_KEY.to_owned(), &stored);
                db.write(batch)?;
                stored
            }
        };
        let key_pair = Ed25519KeyPair::from_der(stored.pkcs8.as_bytes(), stored.version)
            .map_err(|e| Error::internal(format!("stored signing key is unreadable: {e}")))?;
        Ok(Self {
            server_name,
            key_pair,
        })
    }

    /// `ed25519:<version>`
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.key_pair.version())
    }

    /// The public key, unpadded base64 (as published at `/_matrix/key/v2/server`).
    pub fn public_key_base64(&self) -> String {
        Base64::<ruma::serde::base64::Standard, _>::new(self.key_pair.public_key().to_vec())
            .encode()
    }
}

#[cfg(test)]
mod tests {
    use ruma::{
        CanonicalJsonValue, room_version_rules::RoomVersionRules, serde::base64::Standard,
        signatures::Ed25519KeyPair,
    };

    /// The signing key of the spec's examples (Appendices, "Signing JSON"): seed
    /// `YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`, key `ed25519:1`, server `domain`.
    fn spec_key() -> Ed25519KeyPair {
        let seed = ruma::serde::Base64::<Standard, Vec<u8>>::parse(
            "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1",
        )
        .unwrap();
        // PKCS#8 v1 wrapping of a raw ed25519 seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(seed.as_bytes());
        Ed25519KeyPair::from_der(&der, "1".to_owned()).unwrap()
    }

    fn object(json: serde_json::Value) -> ruma::CanonicalJsonObject {
        match ruma::canonical_json::to_canonical_value(json).unwrap() {
            CanonicalJsonValue::Object(object) => object,
            _ => unreachable!(),
        }
    }

    fn signature(object: &ruma::CanonicalJsonObject) -> String {
        let CanonicalJsonValue::Object(signatures) = &object["signatures"] else {
            panic!("no signatures")
        };
        let CanonicalJsonValue::Object(domain) = &signatures["domain"] else {
            panic!("no domain")
        };
        domain["ed25519:1"].as_str().unwrap().to_owned()
    }

    #[test]
    fn signs_json_like_the_spec_examples() {
        let key = spec_key();
        let mut empty = object(serde_json::json!({}));
        ruma::signatures::sign_json("domain", &key, &mut empty).unwrap();
        assert_eq!(
            signature(&empty),
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        );
        let mut data = object(serde_json::json!({ "one": 1, "two": "Two" }));
        ruma::signatures::sign_json("domain", &key, &mut data).unwrap();
        assert_eq!(
            signature(&data),
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
        );
    }

    #[test]
    fn hashes_and_signs_events_like_the_spec_example() {
        let mut event = object(serde_json::json!({
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "signatures": {},
            "hashes": {},
            "type": "X",
            "content": {},
            "prev_events": [],
            "auth_events": [],
            "depth": 3,
            "unsigned": { "age_ts": 1000000 },
        }));
        ruma::signatures::hash_and_sign_event(
            "domain",
            &spec_key(),
            &mut event,
            &RoomVersionRules::V1.redaction,
        )
        .unwrap();
        let CanonicalJsonValue::Object(hashes) = &event["hashes"] else {
            panic!("no hashes")
        };
        assert_eq!(
            hashes["sha256"].as_str(),
            Some("5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos")
        );
        assert_eq!(
            signature(&event),
            "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
        );
    }
}
