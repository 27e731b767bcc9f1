//! Other servers' signing keys: fetched from the server itself (`GET /_matrix/key/v2/server`),
//! accepted only when self-signed and naming the server, kept in RocksDB and memory with
//! their validity, and fetched again when a signature names a key we do not have or the
//! cached answer has expired. Our own keys never leave memory.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, ServerName,
    api::federation::discovery::get_server_keys,
    serde::Base64,
    signatures::{PublicKeyMap, PublicKeySet},
};
use serde::{Deserialize, Serialize};

use super::client::FederationClient;
use crate::{
    error::{Error, Result},
    service::server_keys::ServerKeys,
    storage::{Db, Table, tables},
    util::now_millis,
};

/// A server's published keys as we keep them (key: server name).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoredServerKeys {
    /// Key id → public key (unpadded base64), currently valid.
    pub verify_keys: BTreeMap<String, String>,
    /// Key id → public key of keys the server retired (still valid for old signatures).
    pub old_verify_keys: BTreeMap<String, String>,
    /// Until when `verify_keys` may be trusted without asking again (ms since the epoch).
    pub valid_until_ts: u64,
}

impl StoredServerKeys {
    fn knows(&self, key_id: &str) -> bool {
        self.verify_keys.contains_key(key_id) || self.old_verify_keys.contains_key(key_id)
    }

    fn key_set(&self) -> PublicKeySet {
        self.verify_keys
            .iter()
            .chain(&self.old_verify_keys)
            .filter_map(|(id, key)| Some((id.clone(), Base64::parse(key).ok()?)))
            .collect()
    }
}

/// The key cache.
pub struct RemoteKeys {
    table: Table<String, StoredServerKeys>,
    memory: Mutex<HashMap<String, StoredServerKeys>>,
    db: Db,
}

impl RemoteKeys {
    pub fn new(db: &Db) -> Self {
        Self {
            table: db.open_table(tables::REMOTE_SERVER_KEYS),
            memory: Mutex::default(),
            db: db.clone(),
        }
    }

    fn cached(&self, server: &ServerName) -> Result<Option<StoredServerKeys>> {
        if let Some(hit) = self.lock().get(server.as_str()) {
            return Ok(Some(hit.clone()));
        }
        let stored = self.table.get(&server.to_string())?;
        if let Some(stored) = &stored {
            self.lock().insert(server.to_string(), stored.clone());
        }
        Ok(stored)
    }

    fn store(&self, server: &ServerName, keys: &StoredServerKeys) -> Result<()> {
        let mut batch = self.db.batch();
        self.table.put(&mut batch, &server.to_string(), keys);
        self.db.write(batch)?;
        self.lock().insert(server.to_string(), keys.clone());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredServerKeys>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The public keys of `server` that can check a signature by `key_id` (any key of ours
    /// for our own name). Fetches the server's keys when the cache cannot answer.
    pub async fn keys_for(
        &self,
        server: &ServerName,
        key_id: Option<&str>,
        own: &ServerKeys,
        client: &FederationClient,
    ) -> Result<PublicKeySet> {
        if server == own.server_name {
            let mut set = PublicKeySet::new();
            set.insert(
                own.key_id(),
                Base64::new(own.key_pair.public_key().to_vec()),
            );
            return Ok(set);
        }
        let cached = self.cached(server)?;
        let fresh = cached.as_ref().is_some_and(|keys| {
            keys.valid_until_ts > now_millis() && key_id.is_none_or(|id| keys.knows(id))
        });
        if fresh && let Some(keys) = cached {
            return Ok(keys.key_set());
        }
        match fetch(server, client).await {
            Ok(keys) => {
                self.store(server, &keys)?;
                Ok(keys.key_set())
            }
            // An expired answer still checks signatures made while it was valid.
            Err(e) => match cached {
                Some(keys) if key_id.is_none_or(|id| keys.knows(id)) => Ok(keys.key_set()),
                _ => Err(e),
            },
        }
    }

    /// A key map for every server in `servers` (servers whose keys cannot be had are left
    /// out: their signatures then fail to verify).
    pub async fn key_map(
        &self,
        servers: impl IntoIterator<Item = (ruma::OwnedServerName, Option<String>)>,
        own: &ServerKeys,
        client: &FederationClient,
    ) -> PublicKeyMap {
        let mut map = PublicKeyMap::new();
        for (server, key_id) in servers {
            if map.contains_key(server.as_str()) {
                continue;
            }
            match self.keys_for(&server, key_id.as_deref(), own, client).await {
                Ok(set) => {
                    map.insert(server.to_string(), set);
                }
                Err(e) => tracing::info!(%server, error = %e, "no signing keys for server"),
            }
        }
        map
    }
}

/// Asks `server` for its keys and checks the answer.
async fn fetch(server: &ServerName, client: &FederationClient) -> Result<StoredServerKeys> {
    let response = client
        .send_with_timeout(
            server,
            get_server_keys::v2::Request::new(),
            Some(std::time::Duration::from_secs(20)),
        )
        .await?;
    let object: CanonicalJsonObject = serde_json::from_str(response.server_key.json().get())
        .map_err(|e| Error::remote_failure(format!("{server} published unreadable keys: {e}")))?;
    check_key_document(server, &object)
}

/// Reads a `/_matrix/key/v2/server` document: it must name `server` and carry a valid
/// signature by each of its current keys.
pub fn check_key_document(
    server: &ServerName,
    object: &CanonicalJsonObject,
) -> Result<StoredServerKeys> {
    let bad = |why: &str| Error::remote_failure(format!("keys of {server}: {why}"));
    if object
        .get("server_name")
        .and_then(CanonicalJsonValue::as_str)
        != Some(server.as_str())
    {
        return Err(bad("the document names another server"));
    }
    let keys_of = |field: &str| -> BTreeMap<String, String> {
        let Some(CanonicalJsonValue::Object(keys)) = object.get(field) else {
            return BTreeMap::new();
        };
        keys.iter()
            .filter_map(|(id, value)| {
                let CanonicalJsonValue::Object(value) = value else {
                    return None;
                };
                Some((id.clone(), value.get("key")?.as_str()?.to_owned()))
            })
            .collect()
    };
    let verify_keys = keys_of("verify_keys");
    if verify_keys.is_empty() {
        return Err(bad("no verify_keys"));
    }
    let mut map = PublicKeyMap::new();
    map.insert(
        server.to_string(),
        verify_keys
            .iter()
            .filter_map(|(id, key)| Some((id.clone(), Base64::parse(key).ok()?)))
            .collect(),
    );
    ruma::signatures::verify_json(&map, object)
        .map_err(|e| bad(&format!("the document's signature does not verify: {e}")))?;
    let valid_until_ts = match object.get("valid_until_ts") {
        Some(CanonicalJsonValue::Integer(ts)) => u64::try_from(i64::from(*ts)).unwrap_or(0),
        _ => 0,
    };
    // The spec: a key is never trusted for more than 7 days past the time we fetched it.
    let cap = now_millis() + 7 * 24 * 3600 * 1000;
    Ok(StoredServerKeys {
        verify_keys,
        old_verify_keys: keys_of("old_verify_keys"),
        valid_until_ts: valid_until_ts.min(cap),
    })
}

/// Our own `/_matrix/key/v2/server` document, signed.
pub fn own_key_document(own: &ServerKeys) -> Result<CanonicalJsonObject> {
    let valid_until = now_millis() + 7 * 24 * 3600 * 1000;
    let document = serde_json::json!({
        "server_name": own.server_name,
        "verify_keys": { own.key_id(): { "key": own.public_key_base64() } },
        "old_verify_keys": {},
        "valid_until_ts": valid_until,
    });
    let CanonicalJsonValue::Object(mut object) =
        ruma::canonical_json::to_canonical_value(document).map_err(Error::internal)?
    else {
        return Err(Error::internal("key document is not an object"));
    };
    ruma::signatures::sign_json(own.server_name.as_str(), &own.key_pair, &mut object)
        .map_err(Error::internal)?;
    Ok(object)
}
