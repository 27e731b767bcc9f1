//! Devices and their tokens: login sessions, access/refresh tokens, logout, device management.
//!
//! Tokens are 256-bit random values handed to the client once; only their SHA-256 is stored,
//! and that hash is the lookup key. Looking a token up by its hash leaks nothing useful through
//! timing (an attacker learns about a hash, not about a token), so no other comparison of
//! secrets happens here. Revoking a device deletes its token rows in the same batch as the
//! device, so a revoked token stops working with the next request.
//!
//! Long-lived connections (WebSocket sync) also learn of revocations as they happen: every
//! token deletion bumps [`SessionService::revocations`]. The bump happens while the device lock
//! is held and before the batch is written, so a connection that re-checks its token *under
//! the same lock* ([`SessionService::validate`]) always sees the write that woke it.

use std::sync::Mutex;

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    storage::{Batch, Db, Table, codec, tables},
    util::{now_millis, random_token},
};

/// A device of a user (key: localpart ‖ device id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub created_ts: u64,
    pub last_seen_ts: Option<u64>,
    pub last_seen_ip: Option<String>,
    /// Hex SHA-256 of the device's current access token.
    pub access_token_hash: String,
    /// Hex SHA-256 of the device's current refresh token, if it has one.
    pub refresh_token_hash: Option<String>,
    /// The refresh token used to obtain the current one. The spec keeps it valid until the new
    /// access or refresh token is used, so a client whose refresh response was lost can retry.
    pub previous_refresh_token_hash: Option<String>,
}

/// An access token (key: its SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    /// Expiry in ms since the epoch; `None` never expires.
    pub expires_at: Option<u64>,
    /// Set on tokens minted by a refresh: their first use retires the previous refresh token.
    #[serde(default)]
    pub retires_previous_refresh: bool,
}

/// A refresh token (key: its SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

/// Tokens handed to a client at login, registration or refresh.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// What other services keep per device (pushers, E2EE keys) follows the device: each hook
/// hears of a new device and of a removed one, in the same batch as the device row itself.
pub trait DeviceHook: Send + Sync {
    /// A device was created (a new login or registration).
    fn device_added_into(
        &self,
        _batch: &mut Batch,
        _user: &UserId,
        _device: &DeviceId,
    ) -> Result<()> {
        Ok(())
    }
    /// A device was removed (logout, deletion, password change, deactivation).
    fn remove_device_into(&self, batch: &mut Batch, user: &UserId, device: &DeviceId)
    -> Result<()>;
}

/// How often a device's "last seen" is written back at most.
const LAST_SEEN_GRANULARITY_MS: u64 = 60_000;

/// Owns the `devices`, `access_tokens` and `refresh_tokens` tables.
pub struct SessionService {
    db: Db,
    devices: Table<(String, String), DeviceRecord>,
    access_tokens: Table<[u8; 32], AccessTokenRecord>,
    refresh_tokens: Table<[u8; 32], RefreshTokenRecord>,
    /// Lifetime of access tokens that come with a refresh token (0: refresh tokens disabled).
    access_token_lifetime_ms: u64,
    /// Serializes read-modify-write of device rows (never held across an await).
    device_lock: Mutex<()>,
    /// Bumped whenever tokens are deleted; long-lived connections watch it.
    revoked: tokio::sync::watch::Sender<u64>,
    /// What else follows a device (see [`DeviceHook`]).
    removal_hooks: Vec<std::sync::Arc<dyn DeviceHook>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hash_from_hex(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

fn device_key(user_id: &UserId, device_id: &DeviceId) -> (String, String) {
    (
        user_id.localpart().to_owned(),
        device_id.as_str().to_owned(),
    )
}

impl SessionService {
    pub fn new(
        db: Db,
        access_token_lifetime_secs: u64,
        removal_hooks: Vec<std::sync::Arc<dyn DeviceHook>>,
    ) -> Self {
        Self {
            devices: db.open_table(tables::DEVICES),
            access_tokens: db.open_table(tables::ACCESS_TOKENS),
            refresh_tokens: db.open_table(tables::REFRESH_TOKENS),
            db,
            access_token_lifetime_ms: access_token_lifetime_secs.saturating_mul(1000),
            device_lock: Mutex::new(()),
            revoked: tokio::sync::watch::Sender::new(0),
            removal_hooks,
        }
    }

    /// Changes whenever some token is revoked (logout, device deletion, password change,
    /// deactivation, refresh): holders re-check their own token with [`Self::validate`].
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }

    fn note_revocation(&self) {
        self.revoked.send_modify(|generation| *generation += 1);
    }

    /// Whether an access token is still valid, without recording its use; `Ok` carries when it
    /// expires. Waits for any token change in progress (see the module documentation).
    pub fn validate(&self, token: &str) -> Result<Option<u64>> {
        let _guard = self.lock();
        let (record, _) = self.live_token(&token_hash(token), now_millis())?;
        Ok(record.expires_at)
    }

    /// An access token's record and its device, if the token is known, unexpired and its
    /// device still exists; otherwise the `M_UNKNOWN_TOKEN` error to answer.
    fn live_token(&self, hash: &[u8; 32], now: u64) -> Result<(AccessTokenRecord, DeviceRecord)> {
        let record = self
            .access_tokens
            .get(hash)?
            .ok_or_else(|| Error::unknown_token(false))?;
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::unknown_token(true));
        }
        let device = self
            .devices
            .get(&device_key(&record.user_id, &record.device_id))?
            .ok_or_else(|| Error::unknown_token(false))?;
        Ok((record, device))
    }

    /// Guard for read-modify-write of device rows. Callers of the `*_into` methods hold it
    /// from building the batch until it is written. Never hold it across an await.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.device_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this server hands out refresh tokens at all.
    pub fn refresh_enabled(&self) -> bool {
        self.access_token_lifetime_ms > 0
    }

    /// Starts a session on `device_id` (a fresh id when `None`) and writes it into `batch`
    /// (caller holds [`SessionService::lock`]).
    /// An existing device of that id keeps its name but loses its old tokens.
    pub fn issue_into(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        want_refresh: bool,
    ) -> Result<IssuedTokens> {
        let device_id = device_id.unwrap_or_else(DeviceId::new);
        let key = device_key(user_id, &device_id);
        let existing = self.devices.get(&key)?;
        let existing_is_none = existing.is_none();
        if let Some(old) = &existing {
            self.delete_device_tokens(batch, old);
        }
        let access_token = random_token("hat_");
        let with_refresh = want_refresh && self.refresh_enabled();
        let refresh_token = with_refresh.then(|| random_token("hrt_"));
        let expires_in_ms = with_refresh.then_some(self.access_token_lifetime_ms);
        let now = now_millis();
        let record = DeviceRecord {
            display_name: existing
                .as_ref()
                .and_then(|d| d.display_name.clone())
                .or(display_name),
            created_ts: existing.as_ref().map_or(now, |d| d.created_ts),
            last_seen_ts: Some(now),
            last_seen_ip: existing.and_then(|d| d.last_seen_ip),
            access_token_hash: hex::encode(token_hash(&access_token)),
            refresh_token_hash: refresh_token.as_deref().map(|t| hex::encode(token_hash(t))),
            previous_refresh_token_hash: None,
        };
        if existing_is_none {
            for hook in &self.removal_hooks {
                hook.device_added_into(batch, user_id, &device_id)?;
            }
        }
        self.devices.put(batch, &key, &record);
        self.access_tokens.put(
            batch,
            &token_hash(&access_token),
            &AccessTokenRecord {
                user_id: user_id.to_owned(),
                device_id: device_id.clone(),
                expires_at: expires_in_ms.map(|ms| now + ms),
                retires_previous_refresh: false,
            },
        );
        if let Some(refresh) = &refresh_token {
            self.refresh_tokens.put(
                batch,
                &token_hash(refresh),
                &RefreshTokenRecord {
                    user_id: user_id.to_owned(),
                    device_id: device_id.clone(),
                },
            );
        }
        Ok(IssuedTokens {
            device_id,
            access_token,
            refresh_token,
            expires_in_ms,
        })
    }

    /// Starts a session in a batch of its own.
    pub fn issue(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        want_refresh: bool,
    ) -> Result<IssuedTokens> {
        let _guard = self.lock();
        let mut batch = self.db.batch();
        let tokens = self.issue_into(&mut batch, user_id, device_id, display_name, want_refresh)?;
        self.db.write(batch)?;
        Ok(tokens)
    }

    fn delete_device_tokens(&self, batch: &mut Batch, device: &DeviceRecord) {
        self.note_revocation();
        let hashes = [
            Some(&device.access_token_hash),
            device.refresh_token_hash.as_ref(),
            device.previous_refresh_token_hash.as_ref(),
        ];
        for (i, hash) in hashes.into_iter().enumerate() {
            if let Some(hash) = hash.and_then(|h| hash_from_hex(h)) {
                if i == 0 {
                    self.access_tokens.delete(batch, &hash);
                } else {
                    self.refresh_tokens.delete(batch, &hash);
                }
            }
        }
    }

    /// Resolves an access token to its session, recording when and from where it was used.
    pub fn authenticate(&self, token: &str, client_ip: Option<&str>) -> Result<Session> {
        let hash = token_hash(token);
        let now = now_millis();
        let (record, mut device) = self.live_token(&hash, now)?;
        let key = device_key(&record.user_id, &record.device_id);
        let stale = device
            .last_seen_ts
            .is_none_or(|ts| now.saturating_sub(ts) >= LAST_SEEN_GRANULARITY_MS)
            || (client_ip.is_some() && device.last_seen_ip.as_deref() != client_ip);
        if record.retires_previous_refresh || stale {
            let _guard = self.lock();
            // Re-read under the lock: a concurrent rename or logout must not be undone.
            if let Some(current) = self.devices.get(&key)? {
                device = current;
                let mut batch = self.db.batch();
                if record.retires_previous_refresh {
                    let previous = device.previous_refresh_token_hash.take();
                    if let Some(previous) = previous.as_deref().and_then(hash_from_hex) {
                        self.refresh_tokens.delete(&mut batch, &previous);
                    }
                    let mut updated = record.clone();
                    updated.retires_previous_refresh = false;
                    self.access_tokens.put(&mut batch, &hash, &updated);
                }
                device.last_seen_ts = Some(now);
                if let Some(ip) = client_ip {
                    device.last_seen_ip = Some(ip.to_owned());
                }
                self.devices.put(&mut batch, &key, &device);
                self.db.write(batch)?;
            } else {
                return Err(Error::unknown_token(false));
            }
        }
        Ok(Session {
            user_id: record.user_id,
            device_id: record.device_id,
        })
    }

    /// Exchanges a refresh token for a new access token and refresh token.
    pub fn refresh(&self, refresh_token: &str) -> Result<IssuedTokens> {
        let unknown = || Error::unknown_token(false);
        let hash = token_hash(refresh_token);
        let _guard = self.lock();
        let record = self.refresh_tokens.get(&hash)?.ok_or_else(unknown)?;
        let key = device_key(&record.user_id, &record.device_id);
        let mut device = self.devices.get(&key)?.ok_or_else(unknown)?;
        let mut batch = self.db.batch();
        // Retire every token of the device except the one being used now.
        for other in [
            &device.refresh_token_hash,
            &device.previous_refresh_token_hash,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(other) = hash_from_hex(other).filter(|h| *h != hash) {
                self.refresh_tokens.delete(&mut batch, &other);
            }
        }
        if let Some(old_access) = hash_from_hex(&device.access_token_hash) {
            self.access_tokens.delete(&mut batch, &old_access);
            self.note_revocation();
        }
        let access_token = random_token("hat_");
        let new_refresh = random_token("hrt_");
        let now = now_millis();
        self.access_tokens.put(
            &mut batch,
            &token_hash(&access_token),
            &AccessTokenRecord {
                user_id: record.user_id.clone(),
                device_id: record.device_id.clone(),
                expires_at: Some(now + self.access_token_lifetime_ms),
                retires_previous_refresh: true,
            },
        );
        self.refresh_tokens
            .put(&mut batch, &token_hash(&new_refresh), &record);
        device.access_token_hash = hex::encode(token_hash(&access_token));
        device.refresh_token_hash = Some(hex::encode(token_hash(&new_refresh)));
        device.previous_refresh_token_hash = Some(hex::encode(hash));
        self.devices.put(&mut batch, &key, &device);
        self.db.write(batch)?;
        Ok(IssuedTokens {
            device_id: record.device_id,
            access_token,
            refresh_token: Some(new_refresh),
            expires_in_ms: Some(self.access_token_lifetime_ms),
        })
    }

    /// One device of a user.
    pub fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceRecord>> {
        Ok(self.devices.get(&device_key(user_id, device_id))?)
    }

    /// Every device of a user.
    pub fn devices(&self, user_id: &UserId) -> Result<Vec<(OwnedDeviceId, DeviceRecord)>> {
        Ok(self
            .devices
            .scan_prefix(&codec::prefix(user_id.localpart()))?
            .into_iter()
            .map(|((_, device_id), record)| (device_id.into(), record))
            .collect())
    }

    /// Renames a device; `NotFound` if the user has no such device.
    pub fn rename(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        name: Option<String>,
    ) -> Result<()> {
        let _guard = self.lock();
        let key = device_key(user_id, device_id);
        let mut device = self
            .devices
            .get(&key)?
            .ok_or_else(|| Error::not_found("No such device"))?;
        device.display_name = name;
        let mut batch = self.db.batch();
        self.devices.put(&mut batch, &key, &device);
        self.db.write(batch)?;
        Ok(())
    }

    /// Adds the removal of the given devices (and all their tokens) to `batch` (caller holds
    /// [`SessionService::lock`]).
    pub fn remove_devices_into(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        device_ids: &[OwnedDeviceId],
    ) -> Result<()> {
        for device_id in device_ids {
            let key = device_key(user_id, device_id);
            if let Some(device) = self.devices.get(&key)? {
                self.delete_device_tokens(batch, &device);
                self.devices.delete(batch, &key);
                for hook in &self.removal_hooks {
                    hook.remove_device_into(batch, user_id, device_id)?;
                }
            }
        }
        Ok(())
    }

    /// Removes devices (logging them out) in one batch. Unknown ids are ignored.
    pub fn remove_devices(&self, user_id: &UserId, device_ids: &[OwnedDeviceId]) -> Result<()> {
        let _guard = self.lock();
        let mut batch = self.db.batch();
        self.remove_devices_into(&mut batch, user_id, device_ids)?;
        self.db.write(batch)?;
        Ok(())
    }

    /// Ids of all devices of a user except `keep`.
    pub fn device_ids_except(
        &self,
        user_id: &UserId,
        keep: Option<&DeviceId>,
    ) -> Result<Vec<OwnedDeviceId>> {
        Ok(self
            .devices(user_id)?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| Some(id.as_ref()) != keep)
            .collect())
    }
}
