//! The server's ed25519 signing key: generated at first start, stored in the `meta` table, used
//! to sign every event (and, with federation, every request).

use ruma::{OwnedServerName, serde::Base64, signatures::Ed25519KeyPair};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{Cf, Db, Table},
    util::random_alphanumeric,
};

/// Stored form of the key (key: `signing_key` in `meta`).
#[derive(Serialize, Deserialize)]
struct StoredKey {
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
        let meta: Table<String, StoredKey> = db.table(Cf::Meta);
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
