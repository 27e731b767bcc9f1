//! The request extractor: body limit, access-token authentication and ruma parsing, so that a
//! handler receives a typed, authenticated request or the client gets the right Matrix error.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request},
};
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use ruma::api::{
    IncomingRequest, IncomingRequestExt,
    auth_scheme::{
        AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken,
        NoAuthentication,
    },
    error::{DeserializationError, FromHttpRequestError},
    path_builder::PathBuilder,
};

use crate::{api::AppState, error::Error, service::users::sessions::Session};

/// How an endpoint uses the access token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Required,
    Optional,
    Ignored,
    /// A federation request: signed with `X-Matrix` by the calling server.
    ServerSignature,
}

/// Maps ruma's authentication schemes onto [`TokenUse`].
pub trait AuthRequirement {
    const TOKEN: TokenUse;
}
impl AuthRequirement for AccessToken {
    const TOKEN: TokenUse = TokenUse::Required;
}
impl AuthRequirement for AccessTokenOptional {
    const TOKEN: TokenUse = TokenUse::Optional;
}
// Application services are not supported yet: their tokens are treated like user tokens.
impl AuthRequirement for AppserviceToken {
    const TOKEN: TokenUse = TokenUse::Required;
}
impl AuthRequirement for AppserviceTokenOptional {
    const TOKEN: TokenUse = TokenUse::Optional;
}
impl AuthRequirement for NoAuthentication {
    const TOKEN: TokenUse = TokenUse::Ignored;
}
impl AuthRequirement for NoAccessToken {
    const TOKEN: TokenUse = TokenUse::Ignored;
}
impl AuthRequirement for ruma::api::federation::authentication::ServerSignatures {
    const TOKEN: TokenUse = TokenUse::ServerSignature;
}

/// Who sent a request. Federation adds `Server` (X-Matrix signatures) and application
/// services add `Appservice`; each is checked before a handler runs.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No credentials (endpoints that need none, or an optional token left out).
    Anonymous,
    /// A local user's device, by access token.
    User(Session),
    /// Another homeserver, by its `X-Matrix` signature.
    Server(ruma::OwnedServerName),
}

/// A parsed ruma request plus who sent it.
pub struct Ruma<T> {
    pub body: T,
    pub caller: Caller,
    pub client_ip: Option<IpAddr>,
    /// The body as sent (known to be JSON, or empty), for endpoints whose body may carry
    /// fields beyond ruma's type (the member event content of `/join`).
    pub raw_body: bytes::Bytes,
}

impl<T> Ruma<T> {
    /// The body's top-level fields (none for an empty body).
    pub fn json_object(&self) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        if self.raw_body.is_empty() {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_slice(&self.raw_body) {
            Ok(serde_json::Value::Object(fields)) => Ok(fields),
            _ => Err(Error::bad_json("The body must be a JSON object")),
        }
    }
}

impl<T> Ruma<T> {
    /// The user session of the caller: present on every endpoint that requires a token.
    pub fn session(&self) -> Result<&Session, Error> {
        match &self.caller {
            Caller::User(session) => Ok(session),
            Caller::Anonymous | Caller::Server(_) => Err(Error::missing_token()),
        }
    }

    /// The server that signed a federation request.
    pub fn origin(&self) -> Result<&ruma::ServerName, Error> {
        match &self.caller {
            Caller::Server(origin) => Ok(origin),
            _ => Err(Error::unauthorized("Federation requests must be signed")),
        }
    }
}

/// The access token from `Authorization: Bearer …` or the deprecated `access_token` query
/// parameter.
fn access_token(parts: &Parts) -> Option<String> {
    if parts.headers.contains_key(http::header::AUTHORIZATION) {
        return bearer_token(&parts.headers);
    }
    let query = parts.uri.query()?;
    url_query_value(query, "access_token")
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(value: &str) -> String {
    fn hex_digit(byte: u8) -> Option<u8> {
        (byte as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' => bytes
                .get(i + 1..i + 3)
                .and_then(|pair| Some(hex_digit(pair[0])? * 16 + hex_digit(pair[1])?)),
            _ => None,
        };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client's IP address as seen on the socket.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Reads the body, refusing more than `limit` bytes with `M_TOO_LARGE`.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Error> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::too_large(limit)),
        Err(e) => Err(Error::bad_json(format!("Could not read request body: {e}"))),
    }
}

/// Maps a ruma parse failure onto the spec's errcodes.
fn parse_error(error: FromHttpRequestError) -> Error {
    match error {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            Error::bad_json(format!("Invalid request body: {e}"))
        }
        FromHttpRequestError::Deserialization(e) => {
            Error::invalid_param(format!("Invalid request: {e}"))
        }
        other => Error::bad_json(other.to_string()),
    }
}

/// Refuses a non-empty body that is not JSON. JSON text is UTF-8 (RFC 8259), and serde_json
/// does not check the bytes of strings it skips: a field an endpoint ignores could otherwise
/// carry invalid UTF-8 past this check.
fn check_is_json(body: &[u8]) -> Result<(), Error> {
    if body.is_empty() {
        return Ok(());
    }
    let text =
        std::str::from_utf8(body).map_err(|_| Error::not_json("Request body is not UTF-8"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|_| Error::not_json("Request body is not valid JSON"))
}

/// How deeply a request's JSON may nest. Stored records wrap what clients send a few levels
/// deeper (account data records, `unsigned.prev_content`, `redacted_because`), and serde_json
/// refuses to read past 128 levels: a body accepted here must stay readable once stored.
pub const MAX_JSON_DEPTH: usize = 64;

/// Refuses JSON nested deeper than [`MAX_JSON_DEPTH`] (the body is known to be valid JSON).
fn check_nesting(body: &[u8]) -> Result<(), Error> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(Error::bad_json(format!(
                        "JSON nested deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses bodies that ruma would misjudge: ruma's `LoginInfo` indexes the body by `type`
/// without checking that it is there (a panic instead of an error), and a pusher without a
/// required field is `M_MISSING_PARAM` in the spec, not ruma's `M_BAD_JSON`. Such bodies get
/// the error the spec asks for before ruma sees them.
fn check_before_ruma<T: 'static>(body: &[u8]) -> Result<(), Error> {
    use std::any::TypeId;
    if TypeId::of::<T>() == TypeId::of::<ruma::api::client::push::set_pusher::v3::Request>() {
        return check_pusher_fields(body);
    }
    if TypeId::of::<T>() == TypeId::of::<ruma::api::client::session::login::v3::Request>() {
        let has_type = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .is_some_and(|value| value.get("type").is_some());
        if !has_type {
            return Err(Error::bad_json("Missing field `type`: the login type"));
        }
    }
    Ok(())
}

/// `POST /pushers/set`: every field the spec requires is present (`kind: null` deletes and
/// needs only the ids).
fn check_pusher_fields(body: &[u8]) -> Result<(), Error> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return Err(Error::bad_json("The pusher must be a JSON object"));
    };
    let mut required = vec!["app_id", "pushkey", "kind"];
    if fields.get("kind").is_some_and(|kind| !kind.is_null()) {
        required.extend(["app_display_name", "device_display_name", "lang", "data"]);
    }
    if let Some(missing) = required.iter().find(|name| !fields.contains_key(**name)) {
        return Err(Error::missing_param(format!("Missing field {missing}")));
    }
    if fields.get("kind").and_then(serde_json::Value::as_str) == Some("http")
        && fields["data"].get("url").is_none()
    {
        return Err(Error::missing_param("An http pusher needs data.url"));
    }
    Ok(())
}

/// Who sent a request, by its access token as `token_use` asks. [`Ruma`] calls it; so do
/// handlers that read their body themselves (media uploads stream theirs to disk).
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token_use: TokenUse,
) -> Result<Caller, Error> {
    Ok(match (token_use, access_token(parts)) {
        (TokenUse::Ignored, _) => Caller::Anonymous,
        // Checked with the body, in `Ruma::from_request`.
        (TokenUse::ServerSignature, _) => Caller::Anonymous,
        (TokenUse::Required, None) => return Err(Error::missing_token()),
        (TokenUse::Optional, None) => Caller::Anonymous,
        (_, Some(token)) => {
            // Reads RocksDB and may write the device's last-seen time: blocking work.
            let ip = client_ip(parts).map(|ip| ip.to_string());
            let session = state
                .blocking(move |s| s.sessions.authenticate(&token, ip.as_deref()))
                .await?;
            Caller::User(session)
        }
    })
}

/// The server that signed a federation request (see `FederationService::authenticate`).
async fn authenticate_server(
    parts: &Parts,
    body: &[u8],
    state: &AppState,
) -> Result<ruma::OwnedServerName, Error> {
    let mut request = http::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    if let Some(headers) = request.headers_mut() {
        *headers = parts.headers.clone();
    }
    let request = request
        .body(body)
        .map_err(|e| Error::bad_json(format!("Unreadable request: {e}")))?;
    state.federation.authenticate(&request).await
}

impl<T> FromRequest<AppState> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthRequirement,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let path_params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| Error::invalid_param(format!("Invalid path: {e}")))?;
        let path_args: Vec<String> = path_params
            .iter()
            .map(|(_, value)| value.to_owned())
            .collect();
        let client_ip = client_ip(&parts);
        let bytes = read_body(body, state.config.max_request_size).await?;
        // The body is judged before the token, as Synapse's JSON checks come first: a body
        // that is not JSON is `M_NOT_JSON` whoever sends it.
        check_is_json(&bytes)?;
        check_nesting(&bytes)?;
        let caller = match T::Authentication::TOKEN {
            TokenUse::ServerSignature => {
                Caller::Server(authenticate_server(&parts, &bytes, state).await?)
            }
            token_use => authenticate(&parts, state, token_use).await?,
        };
        check_before_ruma::<T>(&bytes)?;
        let mut args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        // Routes registered without their trailing `{state_key}` mean the empty state key.
        let expected = T::PATH_BUILDER
            .all_paths()
            .next()
            .map_or(0, |p| p.matches('{').count());
        while args.len() < expected {
            args.push("");
        }
        // Clients (matrix-nio's join, for one) send POST/PUT without a body where every field
        // is optional: read that as an empty JSON object.
        let body: &[u8] =
            if bytes.is_empty() && matches!(parts.method, http::Method::POST | http::Method::PUT) {
                b"{}"
            } else {
                bytes.as_ref()
            };
        // `/messages` without `dir` pages backwards, as Synapse does: clients and Complement
        // leave it out, and ruma would otherwise refuse the request before any check.
        if std::any::TypeId::of::<T>()
            == std::any::TypeId::of::<ruma::api::client::message::get_message_events::v3::Request>()
        {
            default_query_value(&mut parts, "dir", "b");
        }
        let http_request = http::Request::from_parts(parts, body);
        let body = T::try_from_http_request(http_request, &args).map_err(parse_error)?;
        Ok(Ruma {
            body,
            caller,
            client_ip,
            raw_body: bytes,
        })
    }
}

/// Adds `name=value` to the request's query unless `name` is there already.
fn default_query_value(parts: &mut Parts, name: &str, value: &str) {
    let query = parts.uri.query().unwrap_or("");
    if url_query_value(query, name).is_some() {
        return;
    }
    let separator = if query.is_empty() { "" } else { "&" };
    let path_and_query = format!("{}?{query}{separator}{name}={value}", parts.uri.path());
    if let Ok(uri) = http::Uri::builder().path_and_query(path_and_query).build() {
        parts.uri = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_not_json_even_where_it_would_be_skipped() {
        assert!(check_is_json(b"").is_ok());
        assert!(check_is_json(b"{\"a\": \"\xc3\xa9\"}").is_ok());
        let error = check_is_json(b"{\"ignored\": \"a\x81\"}").unwrap_err();
        assert_eq!(error.errcode(), "M_NOT_JSON");
        assert_eq!(check_is_json(b"{nope").unwrap_err().errcode(), "M_NOT_JSON");
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check_nesting(deep(MAX_JSON_DEPTH).as_bytes()).is_ok());
        assert!(check_nesting(deep(MAX_JSON_DEPTH + 1).as_bytes()).is_err());
        let brackets_in_a_string =
            format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(200), "{".repeat(200));
        assert!(check_nesting(brackets_in_a_string.as_bytes()).is_ok());
    }

    #[test]
    fn query_token_is_percent_decoded() {
        assert_eq!(
            url_query_value("a=1&access_token=x%2By", "access_token").as_deref(),
            Some("x+y")
        );
        assert_eq!(url_query_value("a=1", "access_token"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
