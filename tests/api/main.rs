//! Integration tests: each starts a real server on 127.0.0.1:0 in a temp dir and talks HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod account_data;
mod accounts;
mod admin;
mod aliases;
mod common;
mod devices;
mod directory;
mod discovery;
mod e2ee;
mod ephemeral;
mod errors;
mod federation;
mod federation_rooms;
mod hostile;
mod login;
mod media;
mod membership;
mod presence;
mod profile;
mod push;
mod refresh;
mod register;
mod relations;
mod restart;
mod rooms;
mod search;
mod security;
mod server_notices;
mod sync;
mod sync_conformance;
mod sync_ws;
