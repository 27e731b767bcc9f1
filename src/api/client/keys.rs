//! End-to-end encryption keys: `/keys/upload`, `/keys/query`, `/keys/claim`,
//! `/keys/changes`, `/keys/device_signing/upload` and `/keys/signatures/upload`. The rules
//! live in `service::e2ee`.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedOneTimeKeyId, UInt,
    api::client::keys::{
        claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
    },
    serde::Raw,
};

use crate::{
    api::{AppState, Ruma, RumaResponse, client::convert::token},
    error::{Error, Result},
    service::{
        e2ee::{cross_signing::SigningKeysUpload, device_keys::KeyUpload},
        users::uiaa,
    },
};

/// `POST /keys/upload`
pub async fn upload(
    State(services): State<AppState>,
    request: Ruma<upload_keys::v3::Request>,
) -> Result<RumaResponse<upload_keys::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let upload = KeyUpload {
        device_keys: body.device_keys,
        one_time_keys: body.one_time_keys,
        fallback_keys: body.fallback_keys,
    };
    let counts = services
        .blocking(move |s| {
            s.e2ee
                .upload_keys(&session.user_id, &session.device_id, upload)
        })
        .await?;
    Ok(RumaResponse(upload_keys::v3::Response::new(
        counts
            .into_iter()
            .map(|(algorithm, count)| (algorithm, UInt::new_saturating(count)))
            .collect(),
    )))
}

/// `POST /keys/query`
pub async fn query(
    State(services): State<AppState>,
    request: Ruma<get_keys::v3::Request>,
) -> Result<RumaResponse<get_keys::v3::Response>> {
    let viewer = request.session()?.user_id.clone();
    let wanted = request.body.device_keys;
    let found = services
        .blocking(move |s| s.query_keys(&viewer, wanted))
        .await?;
    let mut response = get_keys::v3::Response::new();
    response.device_keys = found.device_keys;
    response.master_keys = found.master_keys;
    response.self_signing_keys = found.self_signing_keys;
    response.user_signing_keys = found.user_signing_keys;
    response.failures = found.failures;
    Ok(RumaResponse(response))
}

/// `POST /keys/claim`
pub async fn claim(
    State(services): State<AppState>,
    request: Ruma<claim_keys::v3::Request>,
) -> Result<RumaResponse<claim_keys::v3::Response>> {
    request.session()?;
    let wanted = request
        .body
        .one_time_keys
        .into_iter()
        .map(|(user, devices)| {
            let devices = devices
                .into_iter()
                .map(|(device, algorithm)| (device, algorithm.to_string()))
                .collect();
            (user, devices)
        })
        .collect();
    let (claimed, failures) = services.blocking(move |s| s.claim_keys(wanted)).await?;
    let mut one_time_keys = BTreeMap::new();
    for (user, devices) in claimed {
        let mut by_device = BTreeMap::new();
        for (device, keys) in devices {
            let mut by_id = BTreeMap::new();
            for (key_id, key) in keys {
                let key_id = OwnedOneTimeKeyId::try_from(key_id.as_str())
                    .map_err(|e| Error::internal(format!("stored key id: {e}")))?;
                by_id.insert(key_id, Raw::from_json(key));
            }
            by_device.insert(device, by_id);
        }
        one_time_keys.insert(user, by_device);
    }
    let mut response = claim_keys::v3::Response::new(one_time_keys);
    response.failures = failures;
    Ok(RumaResponse(response))
}

/// `GET /keys/changes?from&to`
pub async fn changes(
    State(services): State<AppState>,
    request: Ruma<get_key_changes::v3::Request>,
) -> Result<RumaResponse<get_key_changes::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let from = token::<u64>("from", Some(&body.from))?.unwrap_or(0);
    let to = token::<u64>("to", Some(&body.to))?.unwrap_or(0);
    let lists = services
        .blocking(move |s| {
            let until = to.min(s.db.stream_watermark());
            s.device_lists(&user, from, until)
        })
        .await?;
    Ok(RumaResponse(get_key_changes::v3::Response::new(
        lists.changed,
        lists.left,
    )))
}

/// `POST /keys/device_signing/upload`: the first master key, and keys identical to the stored
/// ones, need no re-authentication (MSC3967, as in Synapse); replacing keys needs the password.
pub async fn upload_signing_keys(
    State(services): State<AppState>,
    request: Ruma<upload_signing_keys::v3::Request>,
) -> Result<RumaResponse<upload_signing_keys::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            let upload = SigningKeysUpload {
                master: body.master_key.map(Raw::into_json),
                self_signing: body.self_signing_key.map(Raw::into_json),
                user_signing: body.user_signing_key.map(Raw::into_json),
            };
            if s.e2ee.signing_upload_needs_auth(&user, &upload)? {
                let flows = vec![vec![uiaa::PASSWORD]];
                s.user_interactive_auth(
                    body.auth.as_ref(),
                    &flows,
                    "device_signing_upload",
                    Some(&user),
                )?;
            }
            s.e2ee.upload_signing_keys(&user, upload)
        })
        .await?;
    Ok(RumaResponse(upload_signing_keys::v3::Response::new()))
}

/// `POST /keys/signatures/upload`
pub async fn upload_signatures(
    State(services): State<AppState>,
    request: Ruma<upload_signatures::v3::Request>,
) -> Result<RumaResponse<upload_signatures::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let signed = request
        .body
        .signed_keys
        .into_iter()
        .map(|(target, keys)| {
            let keys = keys
                .iter()
                .map(|(id, raw)| (id.to_owned(), raw.to_owned()))
                .collect();
            (target, keys)
        })
        .collect();
    let failures = services
        .blocking(move |s| s.e2ee.upload_signatures(&user, signed))
        .await?;
    let mut response = upload_signatures::v3::Response::new();
    response.failures =
        serde_json::from_value(serde_json::to_value(failures).map_err(Error::internal)?)
            .map_err(Error::internal)?;
    Ok(RumaResponse(response))
}
