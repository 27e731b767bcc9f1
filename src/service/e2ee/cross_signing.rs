//! Cross-signing: a user's master key, the self-signing key it signs (which signs the user's
//! devices) and the user-signing key it signs (which signs other users' master keys), and the
//! signatures clients upload later. Every signature is checked before it is stored.

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, UserId};
use serde_json::{Value, json, value::RawValue};

use super::{E2eeService, signatures};
use crate::error::{Error, Result};

/// The three cross-signing key kinds, as stored.
pub const MASTER: &str = "master";
pub const SELF_SIGNING: &str = "self_signing";
pub const USER_SIGNING: &str = "user_signing";

/// What `/keys/device_signing/upload` was given.
#[derive(Default)]
pub struct SigningKeysUpload {
    pub master: Option<Box<RawValue>>,
    pub self_signing: Option<Box<RawValue>>,
    pub user_signing: Option<Box<RawValue>>,
}

/// A checked cross-signing key: its object and its single public key.
struct CheckedKey {
    raw: Box<RawValue>,
    object: CanonicalJsonObject,
    key_id: String,
    public_key: String,
}

fn check_key(raw: Box<RawValue>, user: &UserId, usage: &str) -> Result<CheckedKey> {
    let object = signatures::canonical(&raw).map_err(Error::bad_json)?;
    if object.get("user_id").and_then(|u| u.as_str()) != Some(user.as_str()) {
        return Err(Error::invalid_param(format!(
            "The {usage} key is not for {user}"
        )));
    }
    let usages = object.get("usage").and_then(|u| u.as_array());
    if !usages.is_some_and(|u| u.iter().any(|x| x.as_str() == Some(usage))) {
        return Err(Error::invalid_param(format!(
            "The key's usage must include {usage}"
        )));
    }
    let (key_id, public_key) = signatures::single_key(&object)
        .ok_or_else(|| Error::invalid_param("A cross-signing key has exactly one ed25519 key"))?;
    Ok(CheckedKey {
        raw,
        object,
        key_id,
        public_key,
    })
}

impl E2eeService {
    /// A stored cross-signing key of `kind`.
    pub fn cross_signing_key(&self, user: &UserId, kind: &str) -> Result<Option<Box<RawValue>>> {
        Ok(self
            .cross_signing_keys
            .get(&(user.as_str().to_owned(), kind.to_owned()))?)
    }

    /// Whether the user has a master key (the first upload needs no re-authentication).
    pub fn has_master_key(&self, user: &UserId) -> Result<bool> {
        Ok(self.cross_signing_key(user, MASTER)?.is_some())
    }

    /// Whether an upload of cross-signing keys needs the user to re-authenticate: not for the
    /// first master key, nor for keys identical to the stored ones (a client retrying its
    /// upload; MSC3967, as Synapse does); replacing or adding keys otherwise does.
    pub fn signing_upload_needs_auth(
        &self,
        user: &UserId,
        upload: &SigningKeysUpload,
    ) -> Result<bool> {
        if !self.has_master_key(user)? {
            return Ok(false);
        }
        for (raw, kind) in [
            (&upload.master, MASTER),
            (&upload.self_signing, SELF_SIGNING),
            (&upload.user_signing, USER_SIGNING),
        ] {
            let Some(raw) = raw else { continue };
            let same = self.cross_signing_key(user, kind)?.is_some_and(|stored| {
                let parse =
                    |raw: &RawValue| serde_json::from_str::<serde_json::Value>(raw.get()).ok();
                parse(&stored).is_some_and(|stored| Some(stored) == parse(raw))
            });
            if !same {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores new cross-signing keys: the self- and user-signing keys must carry a valid
    /// signature of the master key (the new one, or the stored one). All or nothing.
    pub fn upload_signing_keys(&self, user: &UserId, upload: SigningKeysUpload) -> Result<()> {
        let _guard = self.user_locks.lock(user);
        let master = match upload.master {
            Some(raw) => Some(check_key(raw, user, MASTER)?),
            None => None,
        };
        let stored_master = match &master {
            Some(_) => None,
            None => match self.cross_signing_key(user, MASTER)? {
                Some(raw) => Some(check_key(raw, user, MASTER)?),
                None => None,
            },
        };
        let signer = master.as_ref().or(stored_master.as_ref());
        let mut checked = Vec::new();
        for (raw, kind) in [
            (upload.self_signing, SELF_SIGNING),
            (upload.user_signing, USER_SIGNING),
        ] {
            let Some(raw) = raw else { continue };
            let key = check_key(raw, user, kind)?;
            let Some(signer) = signer else {
                return Err(Error::invalid_param("Upload a master key first"));
            };
            if !signatures::verify(
                &key.object,
                user.as_str(),
                &signer.key_id,
                &signer.public_key,
            ) {
                return Err(Error::invalid_signature(format!(
                    "The {kind} key is not signed by the master key"
                )));
            }
            checked.push((kind, key));
        }
        if let Some(master) = master {
            checked.push((MASTER, master));
        }
        let mut batch = self.db.batch();
        let mut changed = false;
        for (kind, key) in checked {
            let table_key = (user.as_str().to_owned(), kind.to_owned());
            let same = self
                .cross_signing_keys
                .get(&table_key)?
                .is_some_and(|old| old.get() == key.raw.get());
            if !same {
                self.cross_signing_keys
                    .put(&mut batch, &table_key, &key.raw);
                changed = true;
            }
        }
        if changed {
            self.note_change_into(&mut batch, user)?;
            self.db.write(batch)?;
            self.announce();
        }
        Ok(())
    }

    /// Checks and stores uploaded signatures (`/keys/signatures/upload`) by `signer`: their own
    /// devices and master key signed by their self-signing key or a device, other users'
    /// master keys signed by their user-signing key. Returns the failures per user and key.
    pub fn upload_signatures(
        &self,
        signer: &UserId,
        signed: BTreeMap<ruma::OwnedUserId, BTreeMap<String, Box<RawValue>>>,
    ) -> Result<BTreeMap<String, BTreeMap<String, Value>>> {
        let _guard = self.user_locks.lock(signer);
        let mut failures: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut batch = self.db.batch();
        let mut changed_users = Vec::new();
        for (target, keys) in signed {
            for (key_id, raw) in keys {
                match self.check_signature(signer, &target, &key_id, &raw) {
                    Ok(new_signatures) => {
                        let table_key = (
                            target.as_str().to_owned(),
                            key_id.clone(),
                            signer.as_str().to_owned(),
                        );
                        let mut stored = self.signatures.get(&table_key)?.unwrap_or_default();
                        stored.extend(new_signatures);
                        self.signatures.put(&mut batch, &table_key, &stored);
                        if !changed_users.contains(&target) {
                            changed_users.push(target.clone());
                        }
                    }
                    Err(message) => {
                        failures.entry(target.to_string()).or_default().insert(
                            key_id,
                            json!({ "errcode": "M_INVALID_SIGNATURE", "error": message }),
                        );
                    }
                }
            }
        }
        for user in &changed_users {
            self.note_change_into(&mut batch, user)?;
        }
        self.db.write(batch)?;
        if !changed_users.is_empty() {
            self.announce();
        }
        Ok(failures)
    }

    /// The signer's valid signatures on the uploaded copy of `target`'s key `key_id`.
    fn check_signature(
        &self,
        signer: &UserId,
        target: &UserId,
        key_id: &str,
        raw: &RawValue,
    ) -> std::result::Result<BTreeMap<String, String>, String> {
        let object = signatures::canonical(raw)?;
        // The key being signed must be the one we have: same object apart from signatures.
        let stored = self
            .signed_target(target, key_id)
            .map_err(|e| e.to_string())?
            .ok_or("No such key")?;
        let stored = signatures::canonical(&stored)?;
        let strip = |mut o: CanonicalJsonObject| {
            o.remove("signatures");
            o.remove("unsigned");
            o
        };
        if strip(object.clone()) != strip(stored) {
            return Err("The signed object differs from the stored key".into());
        }
        let given = object
            .get("signatures")
            .and_then(|s| s.as_object())
            .and_then(|s| s.get(signer.as_str()))
            .and_then(|s| s.as_object())
            .ok_or("No signature of the uploader")?;
        let candidates = self
            .signing_keys_for(signer, target, key_id)
            .map_err(|e| e.to_string())?;
        let mut valid = BTreeMap::new();
        for (signature_key_id, signature) in given {
            let Some(public_key) = candidates.get(signature_key_id) else {
                continue;
            };
            if signatures::verify(&object, signer.as_str(), signature_key_id, public_key)
                && let Some(signature) = signature.as_str()
            {
                valid.insert(signature_key_id.clone(), signature.to_owned());
            }
        }
        if valid.is_empty() {
            return Err("No valid signature by a key allowed to sign this key".into());
        }
        Ok(valid)
    }

    /// The stored key a signature upload names: a device (by device id) or a master key (by
    /// its public key).
    fn signed_target(&self, target: &UserId, key_id: &str) -> Result<Option<Box<RawValue>>> {
        if let Some(device) = self
            .device_keys
            .get(&(target.as_str().to_owned(), key_id.to_owned()))?
        {
            return Ok(Some(device));
        }
        let master = self.cross_signing_key(target, MASTER)?;
        Ok(master.filter(|raw| {
            signatures::canonical(raw)
                .ok()
                .and_then(|o| signatures::single_key(&o))
                .is_some_and(|(_, public)| public == key_id)
        }))
    }

    /// The keys `signer` may sign `target`'s key `key_id` with (signature key id → public key).
    fn signing_keys_for(
        &self,
        signer: &UserId,
        target: &UserId,
        key_id: &str,
    ) -> Result<BTreeMap<String, String>> {
        let mut keys = BTreeMap::new();
        let mut add = |kind: &str| -> Result<()> {
            if let Some(raw) = self.cross_signing_key(signer, kind)?
                && let Some((id, public)) = signatures::canonical(&raw)
                    .ok()
                    .and_then(|o| signatures::single_key(&o))
            {
                keys.insert(id, public);
            }
            Ok(())
        };
        if signer == target {
            let is_device = self
                .device_keys
                .contains(&(target.as_str().to_owned(), key_id.to_owned()))?;
            if is_device {
                add(SELF_SIGNING)?;
            } else {
                // The own master key, signed by one of the user's devices.
                for (device, raw) in self.all_device_keys(signer)? {
                    if let Some(public) = signatures::canonical(&raw).ok().and_then(|o| {
                        o.get("keys")?
                            .as_object()?
                            .get(&format!("ed25519:{device}"))?
                            .as_str()
                            .map(str::to_owned)
                    }) {
                        keys.insert(format!("ed25519:{device}"), public);
                    }
                }
            }
        } else {
            add(USER_SIGNING)?;
        }
        Ok(keys)
    }

    /// Signatures uploaded later on `target`'s key `key_id` that `viewer` may see: the
    /// target's own, and the viewer's.
    pub fn extra_signatures(
        &self,
        target: &UserId,
        key_id: &str,
        viewer: &UserId,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let mut out = BTreeMap::new();
        for signer in [target, viewer] {
            let key = (
                target.as_str().to_owned(),
                key_id.to_owned(),
                signer.as_str().to_owned(),
            );
            if let Some(signatures) = self.signatures.get(&key)? {
                out.insert(signer.to_string(), signatures);
            }
        }
        Ok(out)
    }
}
