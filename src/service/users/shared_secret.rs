//! Shared-secret registration, Synapse's admin protocol (`/_synapse/admin/v1/register`):
//! a single-use nonce, then a request signed with HMAC-SHA1 over
//! `nonce \0 username \0 password \0 ("admin"|"notadmin") [\0 user_type]` keyed by the
//! configured `registration_shared_secret`. Complement creates its users this way.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::{
    error::{Error, Result},
    service::{
        Services,
        users::{accounts::Registered, password::MAX_PASSWORD_BYTES},
    },
    util::random_alphanumeric,
};

/// How long a nonce may be used after it was handed out.
const NONCE_LIFETIME: Duration = Duration::from_secs(60);

/// The signed fields of a shared-secret registration.
pub struct SignedRegistration<'a> {
    pub nonce: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub admin: bool,
    pub user_type: Option<&'a str>,
    pub mac_hex: &'a str,
}

/// Hands out nonces and checks signatures.
#[derive(Default)]
pub struct SharedSecretRegistration {
    nonces: Mutex<HashMap<String, Instant>>,
}

impl SharedSecretRegistration {
    /// A fresh single-use nonce.
    pub fn new_nonce(&self) -> String {
        let nonce = random_alphanumeric(32);
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        nonces.retain(|_, issued| issued.elapsed() < NONCE_LIFETIME);
        nonces.insert(nonce.clone(), Instant::now());
        nonce
    }

    /// Consumes the nonce and verifies the MAC (in constant time) against `secret`.
    pub fn verify(&self, secret: &str, request: &SignedRegistration<'_>) -> Result<()> {
        let issued = self
            .nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(request.nonce);
        if issued.is_none_or(|at| at.elapsed() >= NONCE_LIFETIME) {
            return Err(Error::unknown(
                http::StatusCode::BAD_REQUEST,
                "Unrecognised nonce",
            ));
        }
        let given =
            hex::decode(request.mac_hex.trim()).map_err(|_| Error::forbidden("HMAC incorrect"))?;
        mac_for(secret, request)
            .verify_slice(&given)
            .map_err(|_| Error::forbidden("HMAC incorrect"))
    }
}

/// A shared-secret registration request, as sent.
pub struct SharedSecretRequest {
    pub nonce: String,
    pub username: String,
    pub password: String,
    pub mac_hex: String,
    pub admin: bool,
    pub displayname: Option<String>,
    pub user_type: Option<String>,
}

impl Services {
    /// The configured shared secret; without one the endpoint does not exist.
    pub fn registration_shared_secret(&self) -> Result<&str> {
        self.config
            .registration_shared_secret
            .as_deref()
            .ok_or_else(|| {
                Error::unrecognized(
                    http::StatusCode::NOT_FOUND,
                    "Shared-secret registration is not enabled",
                )
            })
    }

    /// Creates the account (logged in) if the MAC proves knowledge of the shared secret. The
    /// MAC covers the name as sent; the account's name has its capitals lowered, as Synapse
    /// does. Blocking.
    pub fn register_with_shared_secret(&self, request: SharedSecretRequest) -> Result<Registered> {
        let secret = self.registration_shared_secret()?;
        self.shared_secret.verify(
            secret,
            &SignedRegistration {
                nonce: &request.nonce,
                username: &request.username,
                password: &request.password,
                admin: request.admin,
                user_type: request.user_type.as_deref(),
                mac_hex: &request.mac_hex,
            },
        )?;
        if request.password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::weak_password(format!(
                "Password is longer than {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let user_id = self.users.requested_user_id(&request.username)?;
        let tokens = self.create_account(
            &user_id,
            Some(request.password),
            request.admin,
            request.displayname,
            Some((None, None, false)),
        )?;
        Ok(Registered { user_id, tokens })
    }
}

#[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
fn mac_for(secret: &str, request: &SignedRegistration<'_>) -> Hmac<Sha1> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(request.nonce.as_bytes());
    mac.update(b"\0");
    mac.update(request.username.as_bytes());
    mac.update(b"\0");
    mac.update(request.password.as_bytes());
    mac.update(b"\0");
    mac.update(if request.admin { b"admin" } else { b"notadmin" });
    if let Some(user_type) = request.user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    mac
}

/// The hex MAC a client computes (used by tests and the docs' example).
pub fn compute_mac_hex(secret: &str, request: &SignedRegistration<'_>) -> String {
    hex::encode(mac_for(secret, request).finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_single_use_and_mac_is_checked() {
        let registration = SharedSecretRegistration::default();
        let nonce = registration.new_nonce();
        let mut request = SignedRegistration {
            nonce: &nonce,
            username: "alice",
            password: "pw",
            admin: false,
            user_type: None,
            mac_hex: "00",
        };
        assert_eq!(
            registration
                .verify("secret", &request)
                .unwrap_err()
                .errcode(),
            "M_FORBIDDEN"
        );
        let nonce = registration.new_nonce();
        request.nonce = &nonce;
        let mac = compute_mac_hex("secret", &request);
        request.mac_hex = &mac;
        registration.verify("secret", &request).unwrap();
        assert_eq!(
            registration
                .verify("secret", &request)
                .unwrap_err()
                .errcode(),
            "M_UNKNOWN"
        );
    }
}
