//! Account flows that span several services: registration, login, password change,
//! deactivation, device removal, and the user-interactive auth (UIAA) that guards them.
//!
//! These flows read and write storage and hash or verify passwords (argon2, slow on purpose):
//! they block, so callers run them in [`Services::blocking`].

use ruma::{
    OwnedDeviceId, OwnedUserId, UserId,
    api::client::uiaa::{AuthData, UserIdentifier},
};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        users::sessions::{IssuedTokens, Session},
        users::uiaa,
    },
    util::{random_alphanumeric, secrets_equal},
};

/// What a client asks for at `POST /register`, already parsed.
pub struct RegistrationRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<OwnedDeviceId>,
    pub initial_device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refresh_token: bool,
    pub auth: Option<AuthData>,
}

/// A finished registration: the new account and, unless login was inhibited, its session.
pub struct Registered {
    pub user_id: OwnedUserId,
    pub tokens: Option<IssuedTokens>,
}

/// The user a login names.
pub enum LoginName {
    /// `m.id.user` or the legacy `user` field.
    User(String),
    /// A third-party id (e-mail, phone): this server binds none, so such logins fail.
    ThirdParty,
}

/// Generated usernames are this long (36^12 possibilities).
const GENERATED_LOCALPART_LEN: usize = 12;

impl Services {
    /// The flows that registration offers under the current config.
    fn registration_flows(&self) -> Vec<Vec<&'static str>> {
        if self.config.registration_token.is_some() {
            vec![vec![uiaa::REGISTRATION_TOKEN]]
        } else {
            vec![vec![uiaa::DUMMY]]
        }
    }

    /// Runs one UIAA round for `purpose`. `Ok(())` once a flow is complete; otherwise the
    /// 401 challenge (with an errcode when the submitted stage failed).
    pub fn user_interactive_auth(
        &self,
        auth: Option<&AuthData>,
        flows: &[Vec<&'static str>],
        purpose: &'static str,
        user_id: Option<&UserId>,
    ) -> Result<()> {
        let session = self
            .uiaa
            .open(auth.and_then(AuthData::session), purpose, user_id)?;
        let Some(auth) = auth else {
            return Err(self.uiaa.challenge(&session, flows, None));
        };
        let offered = |stage: &str| flows.iter().any(|flow| flow.contains(&stage));
        let failure: Option<(&str, &str)> = match auth {
            AuthData::Dummy(_) if offered(uiaa::DUMMY) => {
                self.uiaa.complete(&session, uiaa::DUMMY);
                None
            }
            AuthData::RegistrationToken(given) if offered(uiaa::REGISTRATION_TOKEN) => {
                let expected = self
                    .config
                    .registration_token
                    .as_deref()
                    .unwrap_or_default();
                if !expected.is_empty() && secrets_equal(&given.token, expected) {
                    self.uiaa.complete(&session, uiaa::REGISTRATION_TOKEN);
                    None
                } else {
                    Some(("M_FORBIDDEN", "Invalid registration token"))
                }
            }
            AuthData::Password(given) if offered(uiaa::PASSWORD) => {
                let named = match &given.identifier {
                    UserIdentifier::Matrix(id) => self.users.resolve_login_name(&id.user),
                    _ => None,
                };
                // Credentials of another account prove nothing about this one: refused
                // outright (as Synapse does), without checking that account's password, so
                // the answer says nothing about it either.
                if let (Some(owner), Some(named)) = (user_id, named.as_deref())
                    && owner != named
                {
                    return Err(Error::forbidden(
                        "The authentication names another user than the account acted on",
                    ));
                }
                let owner = user_id.filter(|owner| named.as_deref() == Some(*owner));
                match owner {
                    Some(owner) if self.users.check_password(owner, &given.password)? => {
                        self.uiaa.complete(&session, uiaa::PASSWORD);
                        None
                    }
                    _ => Some(("M_FORBIDDEN", "Invalid password")),
                }
            }
            // A bare `{session}` asks whether the flow is already complete.
            AuthData::FallbackAcknowledgement(_) => None,
            _ => Some((
                "M_UNRECOGNIZED",
                "Unsupported authentication type for this request",
            )),
        };
        if failure.is_none() && self.uiaa.finish_if_done(&session, flows) {
            return Ok(());
        }
        Err(self.uiaa.challenge(&session, flows, failure))
    }

    /// Checks that registration is possible at all.
    fn ensure_registration_open(&self) -> Result<()> {
        if self.config.allow_registration {
            Ok(())
        } else {
            Err(Error::forbidden("Registration is disabled on this server"))
        }
    }

    /// Whether `localpart` could be registered now (`GET /register/available`).
    pub fn username_available(&self, localpart: &str) -> Result<()> {
        let user_id = self.users.validate_new_localpart(localpart)?;
        if self.users.exists(&user_id)? {
            return Err(Error::user_in_use());
        }
        Ok(())
    }

    /// Checks the registration token (`GET /register/m.login.registration_token/validity`).
    pub fn registration_token_valid(&self, token: &str) -> Result<bool> {
        self.ensure_registration_open()?;
        Ok(self
            .config
            .registration_token
            .as_deref()
            .is_some_and(|expected| secrets_equal(token, expected)))
    }

    /// `POST /register` for a regular user.
    pub fn register(&self, request: RegistrationRequest) -> Result<Registered> {
        self.ensure_registration_open()?;
        // Name problems are reported before the auth dance, so clients can fix them early.
        let requested = match &request.username {
            Some(name) => {
                let user_id = self.users.requested_user_id(name)?;
                if self.users.exists(&user_id)? {
                    return Err(Error::user_in_use());
                }
                Some(user_id)
            }
            None => None,
        };
        let flows = self.registration_flows();
        self.user_interactive_auth(request.auth.as_ref(), &flows, "register", None)?;
        let password = request
            .password
            .ok_or_else(|| Error::missing_param("Missing password"))?;
        let user_id = match requested {
            Some(user_id) => user_id,
            None => self.generated_user_id()?,
        };
        let want_login = !request.inhibit_login;
        let tokens = self.create_account(
            &user_id,
            Some(password),
            false,
            None,
            want_login.then_some((
                request.device_id,
                request.initial_device_display_name,
                request.refresh_token,
            )),
        )?;
        Ok(Registered { user_id, tokens })
    }

    fn generated_user_id(&self) -> Result<OwnedUserId> {
        for _ in 0..8 {
            let user_id = self
                .users
                .validate_new_localpart(&random_alphanumeric(GENERATED_LOCALPART_LEN))?;
            if !self.users.exists(&user_id)? {
                return Ok(user_id);
            }
        }
        Err(Error::internal("could not generate a free username"))
    }

    /// Creates an account with its profile and, when `login` is given as (device id, device
    /// name, wants refresh token), its first session — all in one atomic write.
    pub fn create_account(
        &self,
        user_id: &UserId,
        password: Option<String>,
        admin: bool,
        displayname: Option<String>,
        login: Option<(Option<OwnedDeviceId>, Option<String>, bool)>,
    ) -> Result<Option<IssuedTokens>> {
        let password_hash = match password {
            Some(password) => Some(self.users.hash_password(&password)?),
            None => None,
        };
        let displayname = displayname.unwrap_or_else(|| user_id.localpart().to_owned());
        let mut tokens = None;
        let _device_guard = self.sessions.lock();
        self.users.create(user_id, password_hash, admin, |batch| {
            self.profiles.create_into(batch, user_id, Some(displayname));
            if let Some((device_id, device_name, refresh)) = login {
                tokens = Some(self.sessions.issue_into(
                    batch,
                    user_id,
                    device_id,
                    device_name,
                    refresh,
                )?);
            }
            Ok(())
        })?;
        Ok(tokens)
    }

    /// `POST /login` with a password.
    pub fn login_with_password(
        &self,
        name: LoginName,
        password: &str,
        device_id: Option<OwnedDeviceId>,
        device_name: Option<String>,
        want_refresh: bool,
    ) -> Result<(OwnedUserId, IssuedTokens)> {
        let invalid = || Error::forbidden("Invalid username or password");
        let LoginName::User(name) = name else {
            return Err(invalid());
        };
        let user_id = self.users.resolve_login_name(&name).ok_or_else(invalid)?;
        let record = self.users.get(&user_id)?.ok_or_else(invalid)?;
        if record.deactivated {
            return Err(Error::user_deactivated());
        }
        if !self.users.check_password(&user_id, password)? {
            return Err(invalid());
        }
        let tokens = self
            .sessions
            .issue(&user_id, device_id, device_name, want_refresh)?;
        Ok((user_id, tokens))
    }

    /// `POST /account/password`.
    pub fn change_password(
        &self,
        session: &Session,
        auth: Option<&AuthData>,
        new_password: String,
        logout_other_devices: bool,
    ) -> Result<()> {
        let flows = vec![vec![uiaa::PASSWORD]];
        self.user_interactive_auth(auth, &flows, "change_password", Some(&session.user_id))?;
        let hash = self.users.hash_password(&new_password)?;
        let _device_guard = self.sessions.lock();
        self.users
            .set_password_hash(&session.user_id, hash, |batch| {
                if logout_other_devices {
                    let others = self
                        .sessions
                        .device_ids_except(&session.user_id, Some(&session.device_id))?;
                    self.sessions
                        .remove_devices_into(batch, &session.user_id, &others)?;
                }
                Ok(())
            })
    }

    /// `POST /account/deactivate`: logs out every device, removes password and profile.
    /// The user id stays taken forever.
    pub fn deactivate(&self, session: &Session, auth: Option<&AuthData>) -> Result<()> {
        let flows = vec![vec![uiaa::PASSWORD]];
        self.user_interactive_auth(auth, &flows, "deactivate", Some(&session.user_id))?;
        let _device_guard = self.sessions.lock();
        self.users.deactivate(&session.user_id, |batch| {
            let all = self.sessions.device_ids_except(&session.user_id, None)?;
            self.sessions
                .remove_devices_into(batch, &session.user_id, &all)?;
            self.profiles.delete_into(batch, &session.user_id);
            Ok(())
        })
    }

    /// `DELETE /devices/{id}` and `POST /delete_devices`.
    pub fn delete_devices(
        &self,
        session: &Session,
        auth: Option<&AuthData>,
        device_ids: &[OwnedDeviceId],
    ) -> Result<()> {
        let flows = vec![vec![uiaa::PASSWORD]];
        self.user_interactive_auth(auth, &flows, "delete_devices", Some(&session.user_id))?;
        self.sessions.remove_devices(&session.user_id, device_ids)
    }

    /// Admin: sets a new password and logs out every device of the user.
    pub fn admin_reset_password(&self, user_id: &UserId, password: String) -> Result<()> {
        let hash = self.users.hash_password(&password)?;
        let _device_guard = self.sessions.lock();
        self.users.set_password_hash(user_id, hash, |batch| {
            let all = self.sessions.device_ids_except(user_id, None)?;
            self.sessions.remove_devices_into(batch, user_id, &all)
        })
    }
}
