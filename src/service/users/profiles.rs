//! User profiles: display name and avatar URL.

use std::sync::Mutex;

use ruma::UserId;
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{Batch, Db, Table, tables},
};

/// Stored per local user (key: localpart).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileRecord {
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

/// Longest display name accepted, in characters.
pub const MAX_DISPLAYNAME_CHARS: usize = 256;
/// Longest avatar URL accepted, in bytes.
pub const MAX_AVATAR_URL_BYTES: usize = 1000;

/// Owns the `profiles` table.
pub struct ProfileService {
    db: Db,
    profiles: Table<String, ProfileRecord>,
    /// Serializes read-modify-write so two concurrent field updates cannot lose one.
    update_lock: Mutex<()>,
}

impl ProfileService {
    pub fn new(db: Db) -> Self {
        Self {
            profiles: db.open_table(tables::PROFILES),
            db,
            update_lock: Mutex::new(()),
        }
    }

    /// The profile of a local user, `None` if the user has none (unknown or deactivated).
    pub fn get(&self, user_id: &UserId) -> Result<Option<ProfileRecord>> {
        Ok(self.profiles.get(&user_id.localpart().to_owned())?)
    }

    /// Writes the initial profile of a new account into `batch`.
    pub fn create_into(&self, batch: &mut Batch, user_id: &UserId, displayname: Option<String>) {
        let record = ProfileRecord {
            displayname,
            avatar_url: None,
        };
        self.profiles
            .put(batch, &user_id.localpart().to_owned(), &record);
    }

    /// Removes the profile (account deactivation) in `batch`.
    pub fn delete_into(&self, batch: &mut Batch, user_id: &UserId) {
        self.profiles.delete(batch, &user_id.localpart().to_owned());
    }

    /// Sets or clears (`None` or empty) the display name.
    pub fn set_displayname(&self, user_id: &UserId, displayname: Option<String>) -> Result<()> {
        let displayname = displayname.filter(|name| !name.is_empty());
        if displayname
            .as_ref()
            .is_some_and(|name| name.chars().count() > MAX_DISPLAYNAME_CHARS)
        {
            return Err(Error::bad_json(format!(
                "displayname is longer than {MAX_DISPLAYNAME_CHARS} characters"
            )));
        }
        self.update(user_id, |profile| profile.displayname = displayname)
    }

    /// Sets or clears (`None` or empty) the avatar URL.
    pub fn set_avatar_url(&self, user_id: &UserId, avatar_url: Option<String>) -> Result<()> {
        let avatar_url = avatar_url.filter(|url| !url.is_empty());
        if avatar_url
            .as_ref()
            .is_some_and(|url| url.len() > MAX_AVATAR_URL_BYTES)
        {
            return Err(Error::bad_json(format!(
                "avatar_url is longer than {MAX_AVATAR_URL_BYTES} bytes"
            )));
        }
        self.update(user_id, |profile| profile.avatar_url = avatar_url)
    }

    fn update(&self, user_id: &UserId, change: impl FnOnce(&mut ProfileRecord)) -> Result<()> {
        let key = user_id.localpart().to_owned();
        let _guard = self.update_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut profile = self.profiles.get(&key)?.unwrap_or_default();
        change(&mut profile);
        let mut batch = self.db.batch();
        self.profiles.put(&mut batch, &key, &profile);
        self.db.write(batch)?;
        Ok(())
    }
}
