//! Administration APIs served over HTTP.

pub mod register;
pub mod server_notice;

/// Reads an admin request's JSON body: `M_NOT_JSON` for what does not parse, `M_BAD_JSON` for
/// the wrong shape.
async fn read_json<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> crate::error::Result<T> {
    use crate::error::Error;
    let bytes = crate::api::extract::read_body(body, limit).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| Error::not_json("Body is not JSON"))?;
    serde_json::from_value(value).map_err(|e| Error::bad_json(format!("Invalid body: {e}")))
}
