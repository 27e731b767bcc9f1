//! Client-server API handlers, one file per spec area.

pub mod account;
pub mod account_data;
pub mod backup;
pub mod convert;
pub mod devices;
pub mod directory;
pub mod discovery;
pub mod ephemeral;
pub mod events;
pub mod keys;
pub mod profile;
pub mod push_rules;
pub mod pushers;
pub mod relations;
pub mod reporting;
pub mod rooms;
pub mod search;
pub mod session;
pub mod sync;
pub mod sync_ws;
pub mod user_directory;
