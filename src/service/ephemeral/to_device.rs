//! Send-to-device messages: queued per target device in order, delivered by `/sync`, and
//! deleted once the device's next sync acknowledges them (by syncing from a later token).

use ruma::{DeviceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{Services, users::sessions::Session},
    storage::{Db, Table, codec, keys::ToDeviceKey, tables},
};

/// One queued message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToDeviceMessage {
    pub sender: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content: Value,
    pub position: u64,
}

/// Owns the `to_device` table.
pub struct ToDeviceService {
    db: Db,
    queue: Table<ToDeviceKey, ToDeviceMessage>,
    sent: Table<(String, String), bool>,
}

impl ToDeviceService {
    pub fn new(db: Db) -> Self {
        Self {
            queue: db.open_table(tables::TO_DEVICE),
            sent: db.open_table(tables::TO_DEVICE_TRANSACTION_IDS),
            db,
        }
    }

    /// Messages waiting for a device, oldest first, up to `until`; those at or below `ack` are
    /// deleted first (the client has seen them).
    pub fn take_for_sync(
        &self,
        session: &Session,
        ack: Option<u64>,
        until: u64,
    ) -> Result<Vec<Value>> {
        let prefix = codec::prefix_of(&[session.user_id.as_str(), session.device_id.as_str()]);
        let mut batch = self.db.batch();
        let mut acknowledged = false;
        let mut events = Vec::new();
        for (key, message) in self.queue.scan_prefix(&prefix)? {
            if ack.is_some_and(|ack| message.position <= ack) {
                self.queue.delete(&mut batch, &key);
                acknowledged = true;
            } else if message.position <= until {
                events.push(json!({ "sender": message.sender, "type": message.kind, "content": message.content }));
            }
        }
        if acknowledged {
            self.db.write(batch)?;
        }
        Ok(events)
    }
}

impl Services {
    /// `PUT /sendToDevice/{eventType}/{txnId}`: queues the messages for local devices
    /// (idempotent per sending device and txn id). Blocking.
    pub fn send_to_device(
        &self,
        session: &Session,
        kind: &str,
        txn: &str,
        messages: &Value,
    ) -> Result<()> {
        let txn_key = (
            session.user_id.to_string(),
            serde_json::to_string(&[session.device_id.as_str(), "sendToDevice", txn])
                .map_err(Error::internal)?,
        );
        if self.to_device.sent.get(&txn_key)?.is_some() {
            return Ok(());
        }
        let messages = messages
            .as_object()
            .ok_or_else(|| Error::bad_json("messages must be an object"))?;
        let mut batch = self.db.batch();
        let mut positions = Vec::new();
        let mut woken = Vec::new();
        for (user, by_device) in messages {
            let user = UserId::parse(user)
                .map_err(|e| Error::invalid_param(format!("Invalid user id {user}: {e}")))?;
            if !self.users.is_local(&user) {
                // Remote devices are reached over federation, which is not built yet.
                continue;
            }
            let by_device = by_device
                .as_object()
                .ok_or_else(|| Error::bad_json("messages must map users to devices"))?;
            for (device, content) in by_device {
                let targets: Vec<String> = if device == "*" {
                    self.sessions
                        .devices(&user)?
                        .into_iter()
                        .map(|(id, _)| id.to_string())
                        .collect()
                } else if self
                    .sessions
                    .device(&user, <&DeviceId>::from(device.as_str()))?
                    .is_some()
                {
                    vec![device.clone()]
                } else {
                    Vec::new()
                };
                for target in targets {
                    let stream = self.db.next_stream_position()?;
                    let message = ToDeviceMessage {
                        sender: session.user_id.to_string(),
                        kind: kind.to_owned(),
                        content: content.clone(),
                        position: stream.position,
                    };
                    let key = ToDeviceKey {
                        user: user.to_string(),
                        device: target,
                        position: stream.position,
                    };
                    self.to_device.queue.put(&mut batch, &key, &message);
                    positions.push(stream);
                }
            }
            woken.push(user);
        }
        self.to_device.sent.put(&mut batch, &txn_key, &true);
        self.db.write(batch)?;
        drop(positions);
        self.notifier.wake(woken.iter().map(|u| &**u));
        Ok(())
    }
}
