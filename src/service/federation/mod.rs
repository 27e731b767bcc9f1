//! Federation: talking to other homeservers. Server [`keys`], [`discovery`], signed requests
//! ([`client`]), the outgoing [`queue`] and its [`sender`], incoming transactions
//! ([`inbound`]) and joins across servers ([`joins`]). Every remote event enters rooms
//! through `RoomService::accept_remote`, the pipeline local events use.

pub mod client;
pub mod discovery;
pub mod inbound;
pub mod joins;
pub mod keys;
pub mod queue;
pub mod sender;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use ruma::{
    OwnedServerName, ServerName, api::federation::authentication::XMatrix, signatures::PublicKeyMap,
};

use crate::{
    error::{Error, Result},
    service::{egress::Egress, server_keys::ServerKeys},
};

/// How many answered incoming transactions are remembered (per server, the latest few).
const REMEMBERED_TRANSACTIONS: usize = 1024;

/// The federation side of the server.
pub struct FederationService {
    pub client: client::FederationClient,
    pub remote_keys: keys::RemoteKeys,
    pub queue: Arc<queue::OutboundQueue>,
    pub own: Arc<ServerKeys>,
    /// Per destination: consecutive failures and when to try again.
    pub backoff: sender::Backoffs,
    /// Answers to incoming transactions, so a repeated transaction id gets the first answer.
    transactions: Mutex<TransactionMemory>,
}

#[derive(Default)]
struct TransactionMemory {
    answers: HashMap<(OwnedServerName, String), serde_json::Value>,
    order: VecDeque<(OwnedServerName, String)>,
}

impl FederationService {
    pub fn new(
        db: &crate::storage::Db,
        egress: &Egress,
        own: Arc<ServerKeys>,
        queue: Arc<queue::OutboundQueue>,
    ) -> Self {
        let discovery = discovery::Discovery::new(egress.static_table(), egress.overrides.clone());
        Self {
            client: client::FederationClient::new(egress.client().clone(), discovery, own.clone()),
            remote_keys: keys::RemoteKeys::new(db),
            queue,
            own,
            backoff: Default::default(),
            transactions: Mutex::default(),
        }
    }

    pub fn server_name(&self) -> &ServerName {
        &self.own.server_name
    }

    /// Who sent an incoming federation request: its `X-Matrix` signature is checked against
    /// the origin's published keys, and it must be meant for us. Any failure is `401`.
    pub async fn authenticate(&self, request: &http::Request<&[u8]>) -> Result<OwnedServerName> {
        let header = XMatrix::extract_from_http_headers(request.headers()).map_err(|e| {
            Error::unauthorized(format!("Missing or malformed X-Matrix authorization: {e}"))
        })?;
        if header
            .destination
            .as_deref()
            .is_some_and(|destination| destination != self.server_name())
        {
            return Err(Error::unauthorized(
                "The request is meant for another server",
            ));
        }
        if header.origin == self.server_name() {
            return Err(Error::unauthorized(
                "The request claims to come from this server",
            ));
        }
        let key_id = header.key.to_string();
        let keys = self
            .remote_keys
            .keys_for(&header.origin, Some(&key_id), &self.own, &self.client)
            .await
            .map_err(|e| Error::unauthorized(format!("No keys of {}: {e}", header.origin)))?;
        let mut map = PublicKeyMap::new();
        map.insert(header.origin.to_string(), keys);
        header
            .verify_http_request(request, self.server_name(), &map)
            .map_err(|e| Error::unauthorized(format!("Invalid X-Matrix signature: {e}")))?;
        self.backoff.contacted(&header.origin, &self.queue);
        Ok(header.origin)
    }

    /// The answer we gave to `(origin, txn_id)`, if it came before.
    pub fn remembered_transaction(
        &self,
        origin: &ServerName,
        txn_id: &str,
    ) -> Option<serde_json::Value> {
        self.lock_transactions()
            .answers
            .get(&(origin.to_owned(), txn_id.to_owned()))
            .cloned()
    }

    /// Remembers the answer to a transaction.
    pub fn remember_transaction(
        &self,
        origin: &ServerName,
        txn_id: &str,
        answer: serde_json::Value,
    ) {
        let mut memory = self.lock_transactions();
        let key = (origin.to_owned(), txn_id.to_owned());
        if memory.answers.insert(key.clone(), answer).is_none() {
            memory.order.push_back(key);
        }
        while memory.order.len() > REMEMBERED_TRANSACTIONS {
            if let Some(oldest) = memory.order.pop_front() {
                memory.answers.remove(&oldest);
            }
        }
    }

    fn lock_transactions(&self) -> std::sync::MutexGuard<'_, TransactionMemory> {
        self.transactions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key map to check events signed by the given `(server, key id)` pairs.
    pub async fn key_map(
        &self,
        keys: impl IntoIterator<Item = (OwnedServerName, Option<String>)>,
    ) -> PublicKeyMap {
        self.remote_keys
            .key_map(keys, &self.own, &self.client)
            .await
    }
}
