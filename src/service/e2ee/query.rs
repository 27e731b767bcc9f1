//! `/keys/query` and `/keys/claim` over many users and devices: device keys with their display
//! names and the signatures uploaded since, cross-signing keys with the spec's visibility
//! (user-signing keys only to their owner). Users on other servers get no keys yet
//! (federation comes later) and are listed in `failures`.

use std::collections::BTreeMap;

use ruma::{
    OwnedDeviceId, OwnedUserId, UserId,
    encryption::{CrossSigningKey, DeviceKeys},
    serde::Raw,
};
use serde_json::{Value, json, value::RawValue};

use super::cross_signing::{MASTER, SELF_SIGNING, USER_SIGNING};
use crate::{
    error::{Error, Result},
    service::Services,
};

/// What `/keys/query` answers.
#[derive(Default)]
pub struct KeysQueryResult {
    pub device_keys: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Raw<DeviceKeys>>>,
    pub master_keys: BTreeMap<OwnedUserId, Raw<CrossSigningKey>>,
    pub self_signing_keys: BTreeMap<OwnedUserId, Raw<CrossSigningKey>>,
    pub user_signing_keys: BTreeMap<OwnedUserId, Raw<CrossSigningKey>>,
    pub failures: BTreeMap<String, Value>,
}

/// `raw` with `extra` signatures merged in and, for devices, `unsigned.device_display_name`.
fn decorate(
    raw: &RawValue,
    extra: BTreeMap<String, BTreeMap<String, String>>,
    display_name: Option<Option<String>>,
) -> Result<Box<RawValue>> {
    let mut value: Value = serde_json::from_str(raw.get()).map_err(Error::internal)?;
    let Some(object) = value.as_object_mut() else {
        return Err(Error::internal("stored key is not an object"));
    };
    if !extra.is_empty() {
        let signatures = object.entry("signatures").or_insert_with(|| json!({}));
        for (signer, keys) in extra {
            let entry = signatures
                .as_object_mut()
                .map(|s| s.entry(signer).or_insert_with(|| json!({})));
            if let Some(Value::Object(entry)) = entry {
                for (key_id, signature) in keys {
                    entry.insert(key_id, Value::String(signature));
                }
            }
        }
    }
    if let Some(name) = display_name {
        let unsigned = object.entry("unsigned").or_insert_with(|| json!({}));
        if let (Some(unsigned), Some(name)) = (unsigned.as_object_mut(), name) {
            unsigned.insert("device_display_name".into(), Value::String(name));
        }
    }
    serde_json::value::to_raw_value(&value).map_err(Error::internal)
}

impl Services {
    /// Keys of `wanted` users (all their devices, or the listed ones) as `viewer` may see them.
    pub fn query_keys(
        &self,
        viewer: &UserId,
        wanted: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    ) -> Result<KeysQueryResult> {
        let mut result = KeysQueryResult::default();
        for (user, devices) in wanted {
            if user.server_name() != self.config.server_name() {
                result.failures.insert(
                    user.server_name().to_string(),
                    json!({ "errcode": "M_UNRECOGNIZED", "error": "This server does not federate yet" }),
                );
                continue;
            }
            result
                .device_keys
                .insert(user.clone(), self.device_keys_for(viewer, &user, &devices)?);
            for (kind, out) in [
                (MASTER, &mut result.master_keys),
                (SELF_SIGNING, &mut result.self_signing_keys),
                (USER_SIGNING, &mut result.user_signing_keys),
            ] {
                if kind == USER_SIGNING && viewer != user {
                    continue;
                }
                let Some(raw) = self.e2ee.cross_signing_key(&user, kind)? else {
                    continue;
                };
                let extra = match kind {
                    MASTER => {
                        let public = super::signatures::canonical(&raw)
                            .ok()
                            .and_then(|o| super::signatures::single_key(&o))
                            .map(|(_, public)| public)
                            .unwrap_or_default();
                        self.e2ee.extra_signatures(&user, &public, viewer)?
                    }
                    _ => BTreeMap::new(),
                };
                out.insert(user.clone(), Raw::from_json(decorate(&raw, extra, None)?));
            }
        }
        Ok(result)
    }

    fn device_keys_for(
        &self,
        viewer: &UserId,
        user: &UserId,
        devices: &[OwnedDeviceId],
    ) -> Result<BTreeMap<OwnedDeviceId, Raw<DeviceKeys>>> {
        let names: BTreeMap<OwnedDeviceId, Option<String>> = self
            .sessions
            .devices(user)?
            .into_iter()
            .map(|(id, record)| (id, record.display_name))
            .collect();
        let mut out = BTreeMap::new();
        for (device, raw) in self.e2ee.all_device_keys(user)? {
            let device: OwnedDeviceId = device.into();
            if !devices.is_empty() && !devices.contains(&device) {
                continue;
            }
            let Some(name) = names.get(&device) else {
                continue;
            };
            let extra = self.e2ee.extra_signatures(user, device.as_str(), viewer)?;
            out.insert(
                device,
                Raw::from_json(decorate(&raw, extra, Some(name.clone()))?),
            );
        }
        Ok(out)
    }

    /// Claims one key per requested device: `one_time_keys[user][device]["alg:id"]`.
    #[allow(clippy::type_complexity)]
    pub fn claim_keys(
        &self,
        wanted: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    ) -> Result<(
        BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, BTreeMap<String, Box<RawValue>>>>,
        BTreeMap<String, Value>,
    )> {
        let mut claimed: BTreeMap<
            OwnedUserId,
            BTreeMap<OwnedDeviceId, BTreeMap<String, Box<RawValue>>>,
        > = BTreeMap::new();
        let mut failures = BTreeMap::new();
        for (user, devices) in wanted {
            if user.server_name() != self.config.server_name() {
                failures.insert(
                    user.server_name().to_string(),
                    json!({ "errcode": "M_UNRECOGNIZED", "error": "This server does not federate yet" }),
                );
                continue;
            }
            for (device, algorithm) in devices {
                if let Some((key_id, key)) = self.e2ee.claim_key(&user, &device, &algorithm)? {
                    claimed
                        .entry(user.clone())
                        .or_default()
                        .entry(device)
                        .or_default()
                        .insert(key_id, key);
                }
            }
        }
        Ok((claimed, failures))
    }
}
