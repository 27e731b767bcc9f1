//! Accounts: creation, passwords, admin flag, deactivation and listing.

use std::sync::Mutex;

use ruma::{OwnedServerName, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    service::users::password::PasswordHasherService,
    storage::{Db, Table, tables},
    util::now_millis,
};

/// What is stored per account (key: localpart).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    pub created_ts: u64,
}

/// A row of `hearth user list`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub admin: bool,
    pub deactivated: bool,
    pub created_ts: u64,
}

/// Owns the `users` table.
pub struct UserService {
    db: Db,
    users: Table<String, UserRecord>,
    server_name: OwnedServerName,
    hasher: PasswordHasherService,
    /// Serializes "is the name free? → create" so two registrations cannot both win.
    create_lock: Mutex<()>,
}

impl UserService {
    pub fn new(db: Db, server_name: OwnedServerName, hasher: PasswordHasherService) -> Self {
        Self {
            users: db.open_table(tables::USERS),
            db,
            server_name,
            hasher,
            create_lock: Mutex::new(()),
        }
    }

    pub fn server_name(&self) -> &OwnedServerName {
        &self.server_name
    }

    /// Checks that `localpart` can name a new account here and returns the full user id.
    /// New accounts must use the spec's current grammar (lowercase `a-z0-9._=-/+`).
    pub fn validate_new_localpart(&self, localpart: &str) -> Result<OwnedUserId> {
        if localpart.is_empty() {
            return Err(Error::invalid_username("Username must not be empty"));
        }
        let user_id = UserId::parse_with_server_name(localpart, &self.server_name)
            .map_err(|e| Error::invalid_username(format!("Invalid username: {e}")))?;
        if user_id.validate_strict().is_err() {
            return Err(Error::invalid_username(
                "Username may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
            ));
        }
        if localpart.starts_with('_') {
            return Err(Error::invalid_username(
                "Usernames starting with '_' are reserved",
            ));
        }
        Ok(user_id)
    }

    /// The user id a client asks for when it registers `name`: capitals are lowered first,
    /// as Synapse does (`/register` and shared-secret registration), then the name must be
    /// valid for a new account.
    pub fn requested_user_id(&self, name: &str) -> Result<OwnedUserId> {
        self.validate_new_localpart(&name.to_lowercase())
    }

    /// Turns a login identifier (`alice`, `@alice:server`, any case) into a local user id.
    /// Returns `None` for a user of another server or an unparsable name.
    pub fn resolve_login_name(&self, name: &str) -> Option<OwnedUserId> {
        let lowered = name.trim().to_lowercase();
        let user_id = if lowered.starts_with('@') {
            UserId::parse(lowered).ok()?
        } else {
            UserId::parse_with_server_name(lowered, &self.server_name).ok()?
        };
        (user_id.server_name() == self.server_name).then_some(user_id)
    }

    pub fn is_local(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name
    }

    pub fn get(&self, user_id: &UserId) -> Result<Option<UserRecord>> {
        if !self.is_local(user_id) {
            return Ok(None);
        }
        Ok(self.users.get(&user_id.localpart().to_owned())?)
    }

    /// Whether the id is taken (deactivated accounts keep their id forever).
    pub fn exists(&self, user_id: &UserId) -> Result<bool> {
        Ok(self.is_local(user_id) && self.users.contains(&user_id.localpart().to_owned())?)
    }

    /// Creates an account (hash the password first with [`UserService::hash_password`]). `extra` lets the caller add its own writes (first device, profile)
    /// to the same atomic batch, so a crash never leaves half an account.
    pub fn create(
        &self,
        user_id: &UserId,
        password_hash: Option<String>,
        admin: bool,
        extra: impl FnOnce(&mut crate::storage::Batch) -> Result<()>,
    ) -> Result<()> {
        let record = UserRecord {
            password_hash,
            admin,
            deactivated: false,
            created_ts: now_millis(),
        };
        let key = user_id.localpart().to_owned();
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.users.contains(&key)? {
            return Err(Error::user_in_use());
        }
        let mut batch = self.db.batch();
        self.users.put(&mut batch, &key, &record);
        extra(&mut batch)?;
        self.db.write(batch)?;
        Ok(())
    }

    /// Verifies a password; `false` for unknown, deactivated or password-less accounts.
    /// Blocking (argon2).
    pub fn check_password(&self, user_id: &UserId, password: &str) -> Result<bool> {
        let Some(record) = self.get(user_id)? else {
            return Ok(false);
        };
        let Some(phc) = record.password_hash.filter(|_| !record.deactivated) else {
            return Ok(false);
        };
        self.hasher.verify(password, &phc)
    }

    /// Hashes a password for [`UserService::create`] and [`UserService::set_password_hash`].
    /// Blocking (argon2).
    pub fn hash_password(&self, password: &str) -> Result<String> {
        self.hasher.hash(password)
    }

    /// Replaces the password hash, adding `extra` writes to the same batch.
    pub fn set_password_hash(
        &self,
        user_id: &UserId,
        hash: String,
        extra: impl FnOnce(&mut crate::storage::Batch) -> Result<()>,
    ) -> Result<()> {
        let mut record = self
            .get(user_id)?
            .ok_or_else(|| Error::not_found("No such user"))?;
        if record.deactivated {
            return Err(Error::user_deactivated());
        }
        record.password_hash = Some(hash);
        let mut batch = self.db.batch();
        self.users
            .put(&mut batch, &user_id.localpart().to_owned(), &record);
        extra(&mut batch)?;
        self.db.write(batch)?;
        Ok(())
    }

    /// Marks the account deactivated and removes its password, adding `extra` writes (device
    /// and profile removal) to the same batch.
    pub fn deactivate(
        &self,
        user_id: &UserId,
        extra: impl FnOnce(&mut crate::storage::Batch) -> Result<()>,
    ) -> Result<()> {
        let mut record = self
            .get(user_id)?
            .ok_or_else(|| Error::not_found("No such user"))?;
        record.deactivated = true;
        record.password_hash = None;
        let mut batch = self.db.batch();
        self.users
            .put(&mut batch, &user_id.localpart().to_owned(), &record);
        extra(&mut batch)?;
        self.db.write(batch)?;
        Ok(())
    }

    /// Every account, in localpart order.
    pub fn list(&self) -> Result<Vec<UserSummary>> {
        Ok(self
            .users
            .scan_all()?
            .into_iter()
            .map(|(localpart, record)| UserSummary {
                user_id: format!("@{localpart}:{}", self.server_name),
                admin: record.admin,
                deactivated: record.deactivated,
                created_ts: record.created_ts,
            })
            .collect())
    }
}
