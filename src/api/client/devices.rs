//! Device management: list, get, rename, delete.

use axum::extract::State;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedDeviceId, UInt,
    api::client::device::{
        self, delete_device, delete_devices, get_device, get_devices, update_device,
    },
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::users::sessions::DeviceRecord,
};

fn to_device(device_id: OwnedDeviceId, record: DeviceRecord) -> device::Device {
    let mut device = device::Device::new(device_id);
    device.display_name = record.display_name;
    device.last_seen_ip = record.last_seen_ip;
    device.last_seen_ts = record
        .last_seen_ts
        .and_then(UInt::new)
        .map(MilliSecondsSinceUnixEpoch);
    device
}

/// `GET /devices`
pub async fn list(
    State(services): State<AppState>,
    request: Ruma<get_devices::v3::Request>,
) -> Result<RumaResponse<get_devices::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let devices = services
        .blocking(move |s| s.sessions.devices(&user))
        .await?
        .into_iter()
        .map(|(id, record)| to_device(id, record))
        .collect();
    Ok(RumaResponse(get_devices::v3::Response::new(devices)))
}

/// `GET /devices/{deviceId}`
pub async fn get(
    State(services): State<AppState>,
    request: Ruma<get_device::v3::Request>,
) -> Result<RumaResponse<get_device::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let device_id = request.body.device_id;
    let wanted = device_id.clone();
    let record = services
        .blocking(move |s| s.sessions.device(&user, &wanted))
        .await?
        .ok_or_else(|| Error::not_found("No such device"))?;
    Ok(RumaResponse(get_device::v3::Response::new(to_device(
        device_id, record,
    ))))
}

/// `PUT /devices/{deviceId}`
pub async fn update(
    State(services): State<AppState>,
    request: Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    if body
        .display_name
        .as_ref()
        .is_some_and(|name| name.chars().count() > 100)
    {
        return Err(Error::bad_json(
            "display_name is longer than 100 characters",
        ));
    }
    services
        .blocking(move |s| s.sessions.rename(&user, &body.device_id, body.display_name))
        .await?;
    Ok(RumaResponse(update_device::v3::Response::new()))
}

/// `DELETE /devices/{deviceId}` (user-interactive auth).
pub async fn delete(
    State(services): State<AppState>,
    request: Ruma<delete_device::v3::Request>,
) -> Result<RumaResponse<delete_device::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            if s.sessions
                .device(&session.user_id, &body.device_id)?
                .is_none()
            {
                return Err(Error::not_found("No such device"));
            }
            s.delete_devices(&session, body.auth.as_ref(), &[body.device_id])
        })
        .await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

/// `POST /delete_devices` (user-interactive auth). Unknown device ids are ignored.
pub async fn delete_many(
    State(services): State<AppState>,
    request: Ruma<delete_devices::v3::Request>,
) -> Result<RumaResponse<delete_devices::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| s.delete_devices(&session, body.auth.as_ref(), &body.devices))
        .await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}
