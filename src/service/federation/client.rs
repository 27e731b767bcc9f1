//! Outgoing federation requests: ruma's typed requests, signed with `X-Matrix` when the
//! endpoint asks for it, sent through the egress policy to the address server discovery
//! gives, answers read with a size limit and parsed by ruma.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use ruma::{
    ServerName,
    api::{
        IncomingResponseExt, OutgoingRequest, OutgoingRequestExt,
        auth_scheme::NoAuthentication,
        federation::authentication::{ServerSignatures, XMatrixSigningInput},
        path_builder::SinglePath,
    },
    signatures::Ed25519KeyPair,
};

use super::discovery::Discovery;
use crate::{
    error::{Error, Result},
    service::server_keys::ServerKeys,
};

/// Largest answer read from another server (a `send_join` of a big room is the largest).
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// How a request authenticates: ruma's scheme, filled with our identity.
pub trait FederationAuth: ruma::api::auth_scheme::AuthScheme {
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        key_pair: &'a Ed25519KeyPair,
    ) -> Self::Input<'a>;
}

impl FederationAuth for ServerSignatures {
    fn input<'a>(
        origin: &ServerName,
        destination: &ServerName,
        key_pair: &'a Ed25519KeyPair,
    ) -> XMatrixSigningInput<'a> {
        XMatrixSigningInput::new(origin.to_owned(), destination.to_owned(), key_pair)
    }
}

impl FederationAuth for NoAuthentication {
    fn input(_: &ServerName, _: &ServerName, _: &Ed25519KeyPair) {}
}

/// Sends requests to other servers.
pub struct FederationClient {
    http: reqwest::Client,
    discovery: Discovery,
    keys: Arc<ServerKeys>,
}

impl FederationClient {
    pub fn new(http: reqwest::Client, discovery: Discovery, keys: Arc<ServerKeys>) -> Self {
        Self {
            http,
            discovery,
            keys,
        }
    }

    pub fn origin(&self) -> &ServerName {
        &self.keys.server_name
    }

    /// Sends `request` to `destination` and parses its answer. A refusal by the other server
    /// comes back as its Matrix error; a failure to reach it as `502`.
    pub async fn send<R>(&self, destination: &ServerName, request: R) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest<PathBuilder = SinglePath>,
        R::Authentication: FederationAuth,
    {
        self.send_with_timeout(destination, request, None).await
    }

    /// [`FederationClient::send`] with a shorter time limit than the client's default.
    pub async fn send_with_timeout<R>(
        &self,
        destination: &ServerName,
        request: R,
        timeout: Option<Duration>,
    ) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest<PathBuilder = SinglePath>,
        R::Authentication: FederationAuth,
    {
        if destination == self.origin() {
            return Err(Error::internal("a federation request to ourselves"));
        }
        let base = self.discovery.base_url(destination, &self.http).await;
        let input = <R::Authentication as FederationAuth>::input(
            self.origin(),
            destination,
            &self.keys.key_pair,
        );
        let request: http::Request<Vec<u8>> = request
            .try_into_http_request(&base, input, ())
            .map_err(|e| Error::internal(format!("building a federation request: {e}")))?;
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut outgoing = self.http.request(parts.method, &url).body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name, value);
        }
        if let Some(timeout) = timeout {
            outgoing = outgoing.timeout(timeout);
        }
        let unreachable =
            |e: String| Error::remote_failure(format!("{destination} could not be reached: {e}"));
        let response = outgoing
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_limited(response).await.map_err(unreachable)?;
        let mut answer = http::Response::builder().status(status);
        if let Some(all) = answer.headers_mut() {
            *all = headers;
        }
        let answer = answer.body(body.as_ref()).map_err(Error::internal)?;
        R::IncomingResponse::try_from_http_response(answer).map_err(|e| {
            let (status, message) = remote_error(status, &e.to_string());
            tracing::debug!(%destination, %status, error = %e, "federation request refused");
            message
        })
    }

    /// The HTTP client (for `.well-known` and media, with the same policy).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A remote refusal as our error: 4xx answers keep their status; the rest are a 502.
fn remote_error(status: http::StatusCode, text: &str) -> (http::StatusCode, Error) {
    let message = format!("the remote server answered {status}: {text}");
    let error = if status.is_client_error() {
        match status {
            http::StatusCode::FORBIDDEN => Error::forbidden(message),
            http::StatusCode::NOT_FOUND => Error::not_found(message),
            _ => Error::unknown(status, message),
        }
    } else {
        Error::remote_failure(message)
    };
    (status, error)
}

async fn read_limited(mut response: reqwest::Response) -> std::result::Result<Bytes, String> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// An error with its causes (reqwest hides the interesting part in `source`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
