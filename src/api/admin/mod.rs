//! Administration APIs served over HTTP.

pub mod register;
