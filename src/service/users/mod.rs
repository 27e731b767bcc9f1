//! Users and their sessions: the account table, registration and login flows, devices and
//! tokens, profiles (and carrying their changes into rooms), user-interactive auth, password hashing, shared-secret registration and
//! the user directory.

pub mod accounts;
pub mod directory;
pub mod password;
pub mod profile_rooms;
pub mod profiles;
pub mod sessions;
pub mod shared_secret;
pub mod uiaa;
mod user_store;

pub use user_store::{UserRecord, UserService, UserSummary};
