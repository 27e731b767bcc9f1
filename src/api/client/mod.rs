//! Client-server API handlers, one file per spec area.

pub mod account;
pub mod devices;
pub mod discovery;
pub mod profile;
pub mod session;
