//! Administration APIs served over HTTP.

pub mod register;
pub mod server_notice;
