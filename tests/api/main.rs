//! Integration tests: each starts a real server on 127.0.0.1:0 in a temp dir and talks HTTP.

mod account_data;
mod accounts;
mod admin;
mod common;
mod devices;
mod directory;
mod discovery;
mod ephemeral;
mod errors;
mod federation;
mod login;
mod membership;
mod presence;
mod profile;
mod refresh;
mod register;
mod relations;
mod restart;
mod rooms;
mod search;
mod sync;
mod sync_ws;
