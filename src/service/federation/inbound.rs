//! Incoming transactions (`PUT /send/{txnId}`): at most 50 PDUs and 100 EDUs; each PDU is
//! checked (signatures, content hash) and handed to its room's pipeline, in the order sent,
//! with its own result in the answer. A repeated transaction id gets the first answer.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, RoomId, ServerName};
use serde_json::value::RawValue;

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{
            remote::{check_pdu_with_id, event_id_of, signature_keys},
            rules_for,
        },
    },
};

pub const MAX_PDUS: usize = 50;
pub const MAX_EDUS: usize = 100;

/// Per-PDU results, as the transaction's answer carries them.
pub type PduResults = BTreeMap<OwnedEventId, std::result::Result<(), String>>;

impl Services {
    /// Applies the PDUs of a transaction from `origin`.
    pub async fn receive_transaction(
        self: &Arc<Self>,
        origin: &ServerName,
        pdus: &[Box<RawValue>],
        edu_count: usize,
    ) -> Result<PduResults> {
        if pdus.len() > MAX_PDUS || edu_count > MAX_EDUS {
            return Err(Error::bad_json(format!(
                "A transaction holds at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
            )));
        }
        let mut results = PduResults::new();
        for raw in pdus {
            let Ok(object) = serde_json::from_str::<CanonicalJsonObject>(raw.get()) else {
                tracing::info!(%origin, "a transaction held an event that is not canonical JSON");
                continue;
            };
            let Some(room_id) = object
                .get("room_id")
                .and_then(CanonicalJsonValue::as_str)
                .and_then(|id| RoomId::parse(id).ok())
            else {
                continue;
            };
            let keys = self.federation.key_map(signature_keys(&object)).await;
            let outcome = self
                .blocking(move |s| {
                    let Some((_, room)) = s.rooms.registry.room(&room_id)? else {
                        return Ok(None);
                    };
                    let rules = rules_for(&room.version)?;
                    let event_id = match event_id_of(&object, &rules) {
                        Ok(event_id) => event_id,
                        Err(e) => return Ok(Some((None, Err(e.to_string())))),
                    };
                    let checked = match check_pdu_with_id(
                        object,
                        event_id.clone(),
                        &room_id,
                        &rules,
                        &keys,
                    ) {
                        Ok(checked) => checked,
                        Err(e) => return Ok(Some((Some(event_id), Err(e.to_string())))),
                    };
                    let result = s
                        .rooms
                        .accept_remote(&room_id, checked, false)
                        .map(drop)
                        .map_err(|e| match e {
                            Error::Internal(_) => "internal error".to_owned(),
                            other => other.to_string(),
                        });
                    Ok(Some((Some(event_id), result)))
                })
                .await?;
            match outcome {
                Some((Some(event_id), result)) => {
                    if let Err(reason) = &result {
                        tracing::info!(%origin, %event_id, %reason, "refused a remote event");
                    }
                    results.insert(event_id, result);
                }
                Some((None, Err(reason))) => {
                    tracing::info!(%origin, %reason, "refused a remote event before it had an id");
                }
                _ => tracing::debug!(%origin, "an event for a room this server is not in"),
            }
        }
        Ok(results)
    }
}
