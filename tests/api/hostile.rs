//! Hostile input against every client endpoint: a deterministic, bounded run of malformed
//! paths, query strings, tokens and bodies. The server must answer every request with a status
//! below 500, never drop a connection, never panic, and still work afterwards.
//!
//! The run, all generated from one seed before anything is sent:
//! - every route of the router once, then random routes up to the request count; each request
//!   is clean, hostile in one part (path, query, token or body) with the rest valid, or hostile
//!   throughout;
//! - fixed cases worth making whatever the seed (login objects without `type`, deep nesting,
//!   odd numbers) and integers at the type boundaries in pagination tokens and limits;
//! - endpoints that end sessions or accounts each get a user of their own, so the main users
//!   keep their sessions.
//!
//! Afterwards: JSON nested just below the parser's limit written through every kind of stored
//! value, then every read of the users' data must answer below 500, before and after a restart.
//!
//! `HEARTH_HOSTILE_SEED` and `HEARTH_HOSTILE_COUNT` override the seed and the request count for
//! independent runs (a failure prints both); `HEARTH_HOSTILE_VERBOSE` prints the statuses per
//! route; `HEARTH_HOSTILE_LOG` sets the server's log directives (default `hearth=error`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use reqwest::{Method, header::HeaderValue};
use ruma::api::{Metadata, path_builder::PathBuilder};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestServer, TestUser, create_room, send_text};

const DEFAULT_SEED: u64 = 0x4845_4152_5448;
const DEFAULT_COUNT: usize = 4000;
const CONCURRENCY: usize = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The thread name of the runtime the server runs on: panics there are the server's.
const THREAD_NAME: &str = "hostile-rt";
/// Failure groups and panic sites printed in the assertion message.
const REPORTED_GROUPS: usize = 20;

// ---------------------------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------------------------

/// Which kind of body and query an endpoint takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Plain,
    Login,
    /// Ends sessions or devices: called with the sacrificial user's tokens.
    Logout,
    Refresh,
    Register,
    Username,
    RegistrationToken,
    Password,
    Deactivate,
    Device,
    DeleteDevices,
    Profile,
    Sync,
    Filter,
    Typing,
    Receipt,
    ReadMarkers,
    ToDevice,
    Presence,
    AccountData,
    Tag,
    CreateRoom,
    Membership,
    Join,
    Upgrade,
    Send,
    State,
    GetState,
    Messages,
    Context,
    Relations,
    Threads,
    Timestamp,
    Members,
    Redact,
    Report,
    UserDirectory,
    Search,
    Alias,
    Visibility,
    PublicRooms,
    SyncWs,
    AdminRegister,
}

impl Family {
    /// Endpoints that end sessions, devices or accounts, or use up refresh tokens: each
    /// request gets a user of its own (a [`Victim`]).
    fn sacrificial(self) -> bool {
        matches!(
            self,
            Family::Logout
                | Family::Password
                | Family::Deactivate
                | Family::DeleteDevices
                | Family::Refresh
        )
    }
}

#[derive(Clone, Debug)]
struct Route {
    method: Method,
    template: &'static str,
    family: Family,
}

/// Adds every path ruma knows for `R`, exactly as the router registers them.
fn add<R: Metadata>(routes: &mut Vec<Route>, family: Family) {
    let paths: Vec<&'static str> = R::PATH_BUILDER.all_paths().collect();
    for path in paths {
        let mut push = |template: &'static str| {
            routes.push(Route {
                method: R::METHOD,
                template,
                family,
            })
        };
        push(path);
        if let Some(short) = path.strip_suffix("/{state_key}") {
            push(short);
            push(Box::leak(format!("{short}/").into_boxed_str()));
        }
    }
}

macro_rules! routes {
    ($routes:ident; $($family:ident => [$($ty:ty),+ $(,)?]),+ $(,)?) => {
        $( $( add::<$ty>(&mut $routes, Family::$family); )+ )+
    };
}

/// Every route of `hearth::api::router`, keep in step with it.
fn route_table() -> Vec<Route> {
    use ruma::api::client::{
        account, alias, config, context, device, directory, discovery, filter, knock, membership,
        message, presence, read_marker, receipt, redact, relations, reporting, room, search,
        session, state, sync::sync_events, tag, threads, to_device, typing, user_directory,
    };
    let mut routes = Vec::new();
    routes!(routes;
        Plain => [
            discovery::get_supported_versions::Request,
            discovery::get_capabilities::v3::Request,
            session::get_login_types::v3::Request,
            account::whoami::v3::Request,
            device::get_devices::v3::Request,
            membership::joined_rooms::v3::Request,
            tag::get_tags::v3::Request,
            room::aliases::v3::Request,
            directory::get_room_visibility::v3::Request,
            membership::joined_members::v3::Request,
            state::get_state_events::v3::Request,
            room::get_room_event::v3::Request,
            profile_routes::get_profile,
            profile_routes::get_display_name,
            profile_routes::get_avatar_url,
            presence::get_presence::v3::Request,
            config::get_global_account_data::v3::Request,
            config::get_room_account_data::v3::Request,
            alias::get_alias::v3::Request,
            alias::delete_alias::v3::Request,
            filter::get_filter::v3::Request,
            device::get_device::v3::Request,
        ],
        Login => [session::login::v3::Request],
        Logout => [session::logout::v3::Request, session::logout_all::v3::Request],
        Refresh => [session::refresh_token::v3::Request],
        Register => [account::register::v3::Request],
        Username => [account::get_username_availability::v3::Request],
        RegistrationToken => [account::check_registration_token_validity::v1::Request],
        Password => [account::change_password::v3::Request],
        Deactivate => [account::deactivate::v3::Request],
        Device => [device::update_device::v3::Request],
        DeleteDevices => [device::delete_device::v3::Request, device::delete_devices::v3::Request],
        Profile => [profile_routes::set_display_name, profile_routes::set_avatar_url],
        Sync => [sync_events::v3::Request],
        Filter => [filter::create_filter::v3::Request],
        Typing => [typing::create_typing_event::v3::Request],
        Receipt => [receipt::create_receipt::v3::Request],
        ReadMarkers => [read_marker::set_read_marker::v3::Request],
        ToDevice => [to_device::send_event_to_device::v3::Request],
        Presence => [presence::set_presence::v3::Request],
        AccountData => [
            config::set_global_account_data::v3::Request,
            config::set_room_account_data::v3::Request,
        ],
        Tag => [tag::create_tag::v3::Request, tag::delete_tag::v3::Request],
        CreateRoom => [room::create_room::v3::Request],
        Membership => [
            membership::invite_user::v3::Request,
            membership::kick_user::v3::Request,
            membership::ban_user::v3::Request,
            membership::unban_user::v3::Request,
        ],
        Join => [
            membership::join_room_by_id_or_alias::v3::Request,
            membership::join_room_by_id::v3::Request,
            membership::leave_room::v3::Request,
            membership::forget_room::v3::Request,
            knock::knock_room::v3::Request,
        ],
        Upgrade => [room::upgrade_room::v3::Request],
        Send => [message::send_message_event::v3::Request],
        State => [state::send_state_event::v3::Request],
        GetState => [state::get_state_event_for_key::v3::Request],
        Messages => [message::get_message_events::v3::Request],
        Context => [context::get_context::v3::Request],
        Relations => [
            relations::get_relating_events::v1::Request,
            relations::get_relating_events_with_rel_type::v1::Request,
            relations::get_relating_events_with_rel_type_and_event_type::v1::Request,
        ],
        Threads => [threads::get_threads::v1::Request],
        Timestamp => [room::get_event_by_timestamp::v1::Request],
        Members => [membership::get_member_events::v3::Request],
        Redact => [redact::redact_event::v3::Request],
        Report => [
            room::report_content::v3::Request,
            room::report_room::v3::Request,
            reporting::report_user::v3::Request,
        ],
        UserDirectory => [user_directory::search_users::v3::Request],
        Search => [search::search_events::v3::Request],
        Alias => [alias::create_alias::v3::Request],
        Visibility => [directory::set_room_visibility::v3::Request],
        PublicRooms => [
            directory::get_public_rooms::v3::Request,
            directory::get_public_rooms_filtered::v3::Request,
        ],
    );
    // The routes the router adds by hand.
    let manual = [
        (Method::GET, "/.well-known/matrix/client", Family::Plain),
        (Method::GET, "/.well-known/matrix/server", Family::Plain),
        (Method::GET, "/.well-known/matrix/support", Family::Plain),
        (Method::GET, "/_hearth/client/v1/sync/ws", Family::SyncWs),
        (Method::GET, "/_synapse/admin/v1/register", Family::Plain),
        (
            Method::POST,
            "/_synapse/admin/v1/register",
            Family::AdminRegister,
        ),
    ];
    for (method, template, family) in manual {
        routes.push(Route {
            method,
            template,
            family,
        });
    }
    routes
}

/// The profile request types, renamed so the `routes!` list reads evenly.
mod profile_routes {
    pub use ruma::api::client::profile::{
        get_avatar_url::v3::Request as get_avatar_url,
        get_display_name::v3::Request as get_display_name, get_profile::v3::Request as get_profile,
        set_avatar_url::v3::Request as set_avatar_url,
        set_display_name::v3::Request as set_display_name,
    };
}

// ---------------------------------------------------------------------------------------------
// What the server already holds: the valid values mixed into hostile requests
// ---------------------------------------------------------------------------------------------

struct Known {
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    rooms: Vec<String>,
    events: Vec<String>,
    filter_id: String,
    alias: String,
    since: String,
}

impl Known {
    fn room<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        self.rooms.choose(rng).unwrap()
    }
    fn event<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        self.events.choose(rng).unwrap()
    }
    fn user_id<'a>(&'a self, rng: &mut StdRng) -> &'a str {
        match rng.gen_range(0..4) {
            0 | 1 => &self.alice.user_id,
            2 => &self.bob.user_id,
            _ => &self.carol.user_id,
        }
    }
}

/// The user of one request to a [`Family::sacrificial`] endpoint. Requests are generated before
/// these users exist: their token, device and refresh token appear as placeholders, replaced
/// once they are registered.
#[derive(Clone, Copy, Debug)]
struct Victim(usize);

const VICTIM_PASSWORD: &str = "victim-password";

impl Victim {
    fn localpart(self) -> String {
        format!("victim{}", self.0)
    }
    fn user_id(self) -> String {
        format!("@victim{}:localhost", self.0)
    }
    fn token(self) -> String {
        format!("@@V{}T@@", self.0)
    }
    fn device(self) -> String {
        format!("@@V{}D@@", self.0)
    }
    fn refresh(self) -> String {
        format!("@@V{}R@@", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile building blocks
// ---------------------------------------------------------------------------------------------

/// Path segments in wire form (already percent-encoded where meant to be).
const HOSTILE_SEGMENTS: &[&str] = &[
    "",
    "%00",
    "%FF",
    "%C3%28",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%C0%AF",
    "%",
    "%Z",
    "%%",
    "%2",
    "%2F",
    "a%2Fb",
    "%2e%2e",
    "..",
    ".",
    "%20",
    "+",
    "%3F",
    "%23",
    "!",
    "!:",
    "!a:",
    "!a:b:c",
    "!a:[::1]",
    "!a:[::1",
    "!a:999.999.999.999:99999",
    "!nonexistent:localhost",
    "!nonexistent:example.org",
    "@",
    "@:",
    "@a",
    "@A:localhost",
    "@nobody:localhost",
    "@nobody:example.org",
    "%40alice%3Alocalhost",
    "$",
    "$nonexistent",
    "$nonexistent:localhost",
    "#",
    "%23",
    "%23alias%3Alocalhost",
    "%23%3A",
    "-1",
    "0",
    "18446744073709551616",
    "null",
    "%7B%7D",
    "\u{202e}\u{fe0f}",
    "\u{1f980}",
    "\u{feff}",
    "%EF%BF%BF",
    "m.room.message",
    "m.room.create",
    "m.room.power_levels",
    "m.room.member",
    "m.room.redaction",
    "m.room.tombstone",
    "m.room.server_acl",
    "m.room.canonical_alias",
    "m.ignored_user_list",
    "m.direct",
    "m.fully_read",
    "m.read",
    "m.read.private",
    "m.thread",
    "m.annotation",
    "m.replace",
    "m.favourite",
];

/// Query values in wire form.
const HOSTILE_QUERY_VALUES: &[&str] = &[
    "",
    "%",
    "%zz",
    "%FF",
    "%00",
    "%C3%28",
    "%ED%A0%80",
    "-1",
    "-0",
    "0",
    "1e400",
    "1.5",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "-9223372036854775809",
    "true",
    "null",
    "%7B",
    "%7B%7D",
    "%5B%5D",
    "%7B%22limit%22%3A-1%7D",
    "%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A18446744073709551616%7D%7D%7D",
    "a+b",
    "\u{1f980}",
    "b",
    "f",
    "x",
];

/// A JSON string literal.
fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

fn long_string(rng: &mut StdRng, len: usize) -> String {
    let unit = ["a", "\u{e9}", "\u{1f980}", "\\n", "\\u0000", "\\\""]
        .choose(rng)
        .unwrap();
    let mut out = String::with_capacity(len + 8);
    out.push('"');
    while out.len() < len {
        out.push_str(unit);
    }
    out.push('"');
    out
}

/// Nested arrays or objects `depth` levels deep, closed.
fn nested(depth: usize, objects: bool) -> String {
    if objects {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// A random JSON value in text form: wrong types, huge numbers, odd strings.
fn hostile_value(rng: &mut StdRng, known: &Known, depth: u32) -> String {
    const ATOMS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-1",
        "1.5",
        "-0.0",
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551615",
        "18446744073709551616",
        "9007199254740993",
        "-9007199254740993",
        "9223372036854775807",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "\"\"",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\\ud83e\\udd80\"",
        "\"\u{202e}\u{fe0f}\u{200b}\"",
        "\"%FF%00\"",
        "\"../../etc/passwd\"",
        "\"m.room.message\"",
        "\"m.login.password\"",
        "\"m.login.dummy\"",
        "\"m.id.user\"",
        "\"public_chat\"",
        "\"private_chat\"",
        "\"trusted_private_chat\"",
        "\"12\"",
        "\"10\"",
        "\"1\"",
        "\"@nobody:localhost\"",
        "\"@:\"",
        "\"!\"",
        "\"$\"",
        "\"#:\"",
        "\"mxc://\"",
        "\"mxc://localhost/\"",
        "{}",
        "[]",
        "[null]",
        "{\"\":null}",
    ];
    match rng.gen_range(0..12) {
        0..=5 => ATOMS.choose(rng).unwrap().to_string(),
        6 => js(known.user_id(rng)),
        7 => js(match rng.gen_range(0..3) {
            0 => known.room(rng),
            1 => known.event(rng),
            _ => &known.alias,
        }),
        8 => {
            let len = [10, 300, 5_000, 70_000][rng.gen_range(0..4)];
            long_string(rng, len)
        }
        9 if depth < 3 => {
            let items: Vec<String> = (0..rng.gen_range(0..4))
                .map(|_| hostile_value(rng, known, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        10 if depth < 3 => {
            let keys = [
                "type",
                "content",
                "",
                "a",
                "m.relates_to",
                "event_id",
                "user_id",
            ];
            let items: Vec<String> = (0..rng.gen_range(0..4))
                .map(|_| {
                    format!(
                        "{}:{}",
                        js(keys.choose(rng).unwrap()),
                        hostile_value(rng, known, depth + 1)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => nested(rng.gen_range(90..126), rng.gen_bool(0.5)),
    }
}

/// A sensible body for the endpoint family, as (field, JSON text) pairs.
fn plausible_fields(
    family: Family,
    rng: &mut StdRng,
    known: &Known,
    victim: Option<Victim>,
) -> Vec<(String, String)> {
    let mut f: Vec<(&str, String)> = Vec::new();
    let room = js(known.room(rng));
    let event = js(known.event(rng));
    let user = js(known.user_id(rng));
    let alice = &known.alice;
    let victim = victim.unwrap_or(Victim(0));
    let victim_auth = |good: bool| {
        let password = if good { VICTIM_PASSWORD } else { "wrong" };
        json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": victim.user_id() },
            "password": password,
        })
        .to_string()
    };
    match family {
        Family::Plain | Family::SyncWs | Family::Logout => {}
        Family::Login => {
            // Missing `type` sometimes: the object must still be refused cleanly.
            if rng.gen_bool(0.7) {
                let kind = ["m.login.password", "m.login.token", "m.login.foo", ""]
                    .choose(rng)
                    .unwrap();
                f.push(("type", js(kind)));
            }
            let identifier = match rng.gen_range(0..4) {
                0 => json!({ "type": "m.id.user", "user": alice.user_id }),
                1 => json!({ "type": "m.id.user", "user": "alice" }),
                2 => json!({ "type": "m.id.thirdparty", "medium": "email", "address": "a@b" }),
                _ => json!({ "type": "m.id.phone", "country": "GB", "phone": "1" }),
            };
            f.push(("identifier", identifier.to_string()));
            let password = if rng.gen_bool(0.5) {
                alice.password.as_str()
            } else {
                "wrong"
            };
            f.push(("password", js(password)));
            if rng.gen_bool(0.3) {
                f.push(("user", js("alice")));
            }
            if rng.gen_bool(0.3) {
                // Never alice's own device: logging in as it would end her session.
                f.push(("device_id", js(&format!("LOGIN{}", rng.gen_range(0..1000)))));
            }
            if rng.gen_bool(0.3) {
                f.push(("initial_device_display_name", js("hostile")));
            }
            if rng.gen_bool(0.3) {
                f.push(("refresh_token", "true".into()));
            }
            if rng.gen_bool(0.2) {
                f.push(("token", js("garbage")));
            }
        }
        Family::Refresh => f.push(("refresh_token", js(&victim.refresh()))),
        Family::Register | Family::AdminRegister => {
            let name = format!("h{}", rng.gen_range(0..1_000_000));
            f.push(("username", js(&name)));
            f.push(("password", js("hostile-password")));
            if family == Family::Register {
                f.push(("auth", json!({ "type": "m.login.dummy" }).to_string()));
                if rng.gen_bool(0.3) {
                    f.push(("inhibit_login", "true".into()));
                }
                if rng.gen_bool(0.3) {
                    f.push(("device_id", js("HOSTILE")));
                }
                if rng.gen_bool(0.3) {
                    f.push(("refresh_token", "true".into()));
                }
            } else {
                f.push(("nonce", js("nonce")));
                f.push(("mac", js("00")));
                f.push(("admin", "false".into()));
                f.push(("displayname", js("x")));
            }
        }
        Family::Username | Family::RegistrationToken => {}
        Family::Password => {
            f.push(("new_password", js("new-password")));
            f.push(("logout_devices", "false".into()));
            f.push(("auth", victim_auth(rng.gen_bool(0.5))));
        }
        Family::Deactivate => {
            f.push(("auth", victim_auth(rng.gen_bool(0.5))));
            f.push(("erase", "true".into()));
        }
        Family::Device => f.push(("display_name", js("hostile device"))),
        Family::DeleteDevices => {
            f.push(("devices", json!([victim.device()]).to_string()));
            f.push(("auth", victim_auth(rng.gen_bool(0.5))));
        }
        Family::Profile => {
            f.push(("displayname", js("Hostile \u{1f980}")));
            f.push(("avatar_url", js("mxc://localhost/abc")));
        }
        Family::Filter => {
            let filter = json!({
                "event_fields": ["content.body", "type"],
                "event_format": "client",
                "presence": { "limit": 1, "types": ["m.presence"] },
                "room": {
                    "rooms": [known.room(rng)],
                    "not_rooms": [],
                    "timeline": { "limit": 5, "types": ["m.room.*"], "lazy_load_members": true },
                    "state": { "lazy_load_members": true, "include_redundant_members": true },
                    "include_leave": true,
                },
            });
            if let Some(object) = filter.as_object() {
                for (key, value) in object {
                    f.push((leak(key), value.to_string()));
                }
            }
        }
        Family::Typing => {
            f.push(("typing", "true".into()));
            f.push(("timeout", rng.gen_range(0..40_000u32).to_string()));
        }
        Family::Receipt => {
            if rng.gen_bool(0.5) {
                f.push(("thread_id", js(["main", "$x"].choose(rng).unwrap())));
            }
        }
        Family::ReadMarkers => {
            f.push(("m.fully_read", event.clone()));
            f.push(("m.read", event.clone()));
            f.push(("m.read.private", event));
        }
        Family::ToDevice => {
            let messages = json!({
                known.bob.user_id.clone(): { "*": { "a": 1 } },
                known.alice.user_id.clone(): { known.alice.device_id.clone(): { "b": 2 } },
            });
            f.push(("messages", messages.to_string()));
        }
        Family::Presence => {
            let presence = ["online", "offline", "unavailable", "busy"];
            f.push(("presence", js(presence.choose(rng).unwrap())));
            f.push(("status_msg", js("hostile")));
        }
        Family::AccountData => {
            f.push((
                "ignored_users",
                json!({ known.bob.user_id.clone(): {} }).to_string(),
            ));
            f.push(("event_id", event));
            f.push(("a", "1".into()));
        }
        Family::Tag => f.push(("order", ["0.5", "1", "-1", "2"][rng.gen_range(0..4)].into())),
        Family::CreateRoom => {
            let preset = ["public_chat", "private_chat", "trusted_private_chat"];
            f.push(("preset", js(preset.choose(rng).unwrap())));
            if rng.gen_bool(0.5) {
                f.push(("name", js("hostile room")));
            }
            if rng.gen_bool(0.3) {
                f.push(("topic", js("topic")));
            }
            if rng.gen_bool(0.4) {
                f.push(("invite", json!([known.bob.user_id]).to_string()));
            }
            if rng.gen_bool(0.3) {
                let version = ["10", "11", "12", "9", "1"].choose(rng).unwrap();
                f.push(("room_version", js(version)));
            }
            if rng.gen_bool(0.3) {
                let state = json!([
                    { "type": "m.room.history_visibility", "state_key": "",
                      "content": { "history_visibility": "world_readable" } },
                    { "type": "m.room.join_rules", "content": { "join_rule": "public" } },
                    { "type": "m.room.member", "state_key": known.bob.user_id,
                      "content": { "membership": "join" } },
                ]);
                f.push(("initial_state", state.to_string()));
            }
            if rng.gen_bool(0.3) {
                let levels =
                    json!({ "users": { alice.user_id.clone(): 100 }, "events_default": 0 });
                f.push(("power_level_content_override", levels.to_string()));
            }
            if rng.gen_bool(0.2) {
                f.push((
                    "room_alias_name",
                    js(&format!("a{}", rng.gen_range(0..100_000))),
                ));
            }
            if rng.gen_bool(0.2) {
                f.push((
                    "creation_content",
                    json!({ "m.federate": false }).to_string(),
                ));
            }
            if rng.gen_bool(0.2) {
                f.push(("is_direct", "true".into()));
            }
            if rng.gen_bool(0.2) {
                f.push(("visibility", js("public")));
            }
        }
        Family::Membership => {
            f.push(("user_id", user));
            f.push(("reason", js("because")));
        }
        Family::Join => {
            if rng.gen_bool(0.5) {
                f.push(("reason", js("because")));
            }
        }
        Family::Upgrade => {
            let version = ["10", "11", "12", "9", "999"].choose(rng).unwrap();
            f.push(("new_version", js(version)));
        }
        Family::Send | Family::State => {
            f.push(("msgtype", js("m.text")));
            f.push(("body", js("hostile")));
            match rng.gen_range(0..8) {
                0 => {
                    let relation = ["m.thread", "m.annotation", "m.reference", "m.replace"]
                        .choose(rng)
                        .unwrap();
                    let relates = json!({ "rel_type": relation, "event_id": known.event(rng),
                                         "key": "x" });
                    f.push(("m.relates_to", relates.to_string()));
                }
                1 => {
                    let reply = json!({ "m.in_reply_to": { "event_id": known.event(rng) } });
                    f.push(("m.relates_to", reply.to_string()));
                }
                2 => f.push(("m.new_content", json!({ "body": "x" }).to_string())),
                _ => {}
            }
            if family == Family::State {
                let state_fields: &[(&str, &str)] = &[
                    ("name", "\"n\""),
                    ("topic", "\"t\""),
                    ("join_rule", "\"public\""),
                    ("join_rule", "\"knock\""),
                    ("membership", "\"join\""),
                    ("membership", "\"ban\""),
                    ("membership", "\"invite\""),
                    ("history_visibility", "\"joined\""),
                    ("users_default", "0"),
                    ("events", "{\"m.room.name\":50}"),
                    ("alias", "\"#nope:localhost\""),
                    ("alt_aliases", "[\"#nope:localhost\"]"),
                    ("allow", "[\"*\"]"),
                    ("deny", "[\"evil.example\"]"),
                    ("allow_ip_literals", "false"),
                    ("via", "[\"localhost\"]"),
                    ("replacement_room", "\"!nope:localhost\""),
                    ("url", "\"mxc://localhost/x\""),
                ];
                for _ in 0..rng.gen_range(1..4) {
                    let (key, value) = state_fields.choose(rng).unwrap();
                    f.push((key, value.to_string()));
                }
                if rng.gen_bool(0.3) {
                    let users =
                        json!({ alice.user_id.clone(): 100, known.bob.user_id.clone(): 50 });
                    f.push(("users", users.to_string()));
                }
            }
        }
        Family::Redact | Family::Report => {
            f.push(("reason", js("spam")));
            if family == Family::Report && rng.gen_bool(0.5) {
                f.push(("score", "-50".into()));
            }
        }
        Family::UserDirectory => {
            f.push((
                "search_term",
                js(["bob", "a", "", "@", "%"].choose(rng).unwrap()),
            ));
            f.push(("limit", rng.gen_range(0..20).to_string()));
        }
        Family::Search => {
            let term = ["hostile", "a", "*", "\"", ""].choose(rng).unwrap();
            let order = ["rank", "recent"].choose(rng).unwrap();
            let categories = json!({
                "room_events": {
                    "search_term": term,
                    "keys": ["content.body", "content.name"],
                    "filter": { "limit": 3, "rooms": [known.room(rng)] },
                    "order_by": order,
                    "event_context": { "before_limit": 2, "after_limit": 2, "include_profile": true },
                    "include_state": true,
                    "groupings": { "group_by": [{ "key": "room_id" }, { "key": "sender" }] },
                }
            });
            f.push(("search_categories", categories.to_string()));
        }
        Family::Alias => f.push(("room_id", room)),
        Family::Visibility => {
            f.push(("visibility", js(["public", "private"].choose(rng).unwrap())));
        }
        Family::PublicRooms => {
            f.push(("limit", rng.gen_range(0..10).to_string()));
            f.push((
                "filter",
                json!({ "generic_search_term": "hostile" }).to_string(),
            ));
            if rng.gen_bool(0.3) {
                f.push(("since", js("0")));
            }
            if rng.gen_bool(0.3) {
                f.push(("include_all_networks", "true".into()));
            }
        }
        Family::Sync
        | Family::GetState
        | Family::Messages
        | Family::Context
        | Family::Relations
        | Family::Threads
        | Family::Timestamp
        | Family::Members => {}
    }
    f.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn object_text(fields: &[(String, String)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", js(k)))
        .collect();
    format!("{{{}}}", items.join(","))
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Spec {
    method: Method,
    template: &'static str,
    /// Path and query in wire form.
    target: String,
    /// The `Authorization` header value, if any.
    authorization: Option<Vec<u8>>,
    auth_desc: String,
    body: Option<Vec<u8>>,
    content_type: Option<&'static str>,
    /// Sent over a bare TCP socket, so that `..` and raw bytes reach the server unchanged.
    raw: bool,
    /// Bigger than the server's request size limit.
    oversized: bool,
    /// Whose placeholders to fill in.
    victim: Option<Victim>,
}

impl Spec {
    /// Puts the registered victim's token, device and refresh token in place.
    fn fill_in(&mut self, victim: Victim, session: &VictimSession) {
        let pairs = [
            (victim.token(), session.token.as_str()),
            (victim.device(), session.device_id.as_str()),
            (victim.refresh(), session.refresh_token.as_str()),
        ];
        for (placeholder, value) in &pairs {
            self.target = self.target.replace(placeholder, value);
            for bytes in [&mut self.authorization, &mut self.body]
                .into_iter()
                .flatten()
            {
                *bytes = replace_bytes(bytes, placeholder.as_bytes(), value.as_bytes());
            }
        }
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

struct VictimSession {
    token: String,
    device_id: String,
    refresh_token: String,
}

/// Registers the victims the generated requests refer to.
async fn register_victims(server: &TestServer, count: usize) -> Vec<VictimSession> {
    let register = |i: usize| async move {
        let body = json!({
            "username": Victim(i).localpart(),
            "password": VICTIM_PASSWORD,
            "auth": { "type": "m.login.dummy" },
            "refresh_token": true,
        });
        let (status, body) = server.post("/_matrix/client/v3/register", None, body).await;
        assert_eq!(status, 200, "victim {i} registers: {body}");
        let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        VictimSession {
            token: field("access_token"),
            device_id: field("device_id"),
            refresh_token: field("refresh_token"),
        }
    };
    futures::stream::iter(0..count)
        .map(register)
        .buffered(CONCURRENCY)
        .collect()
        .await
}

enum Outcome {
    Status(u16, String),
    Transport(String),
}

struct Generator<'a> {
    rng: StdRng,
    known: &'a Known,
    max_request_size: usize,
    victims: usize,
}

/// How hostile one request is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything valid: reaches the handler's real work.
    Clean,
    /// One part hostile (0 path, 1 query, 2 token, 3 body), the rest valid: gets past the
    /// other checks with the hostile part.
    One(u8),
    /// Everything random.
    Chaos,
}

impl Mode {
    fn hostile(self, part: u8) -> bool {
        match self {
            Mode::Clean => false,
            Mode::One(p) => p == part,
            Mode::Chaos => true,
        }
    }
}

impl Generator<'_> {
    /// A value for a path parameter: valid unless `hostile`, and then still half the time.
    fn segment(&mut self, name: &str, victim: Option<Victim>, hostile: bool) -> String {
        let known = self.known;
        let rng = &mut self.rng;
        if !hostile || rng.gen_bool(0.5) {
            let valid: String = match name {
                "room_id" => known.room(rng).to_owned(),
                "room_id_or_alias" => {
                    if rng.gen_bool(0.5) {
                        known.room(rng).to_owned()
                    } else {
                        known.alias.replace('#', "%23")
                    }
                }
                "room_alias" => {
                    if rng.gen_bool(0.5) {
                        known.alias.replace('#', "%23")
                    } else {
                        format!("%23h{}%3Alocalhost", rng.gen_range(0..100_000))
                    }
                }
                "event_id" => known.event(rng).to_owned(),
                "user_id" => match victim {
                    Some(victim) => victim.user_id(),
                    None => known.user_id(rng).to_owned(),
                },
                "device_id" => {
                    if let Some(victim) = victim {
                        victim.device()
                    } else if rng.gen_bool(0.8) {
                        known.alice.device_id.clone()
                    } else {
                        known.bob.device_id.clone()
                    }
                }
                "event_type" => [
                    "m.room.message",
                    "m.room.name",
                    "m.room.topic",
                    "m.room.member",
                    "m.room.power_levels",
                    "m.room.join_rules",
                    "m.room.history_visibility",
                    "m.room.canonical_alias",
                    "m.room.server_acl",
                    "m.room.create",
                    "m.room.tombstone",
                    "m.room.redaction",
                    "m.reaction",
                    "m.space.child",
                    "m.direct",
                    "m.ignored_user_list",
                    "m.fully_read",
                    "m.push_rules",
                    "org.example.custom",
                ]
                .choose(rng)
                .unwrap()
                .to_string(),
                "state_key" => match rng.gen_range(0..3) {
                    0 => String::new(),
                    1 => known.user_id(rng).to_owned(),
                    _ => "x".to_owned(),
                },
                "txn_id" => {
                    if rng.gen_bool(0.3) {
                        "fixed-txn".to_owned()
                    } else {
                        format!("t{}", rng.r#gen::<u32>())
                    }
                }
                "filter_id" => known.filter_id.clone(),
                "receipt_type" => ["m.read", "m.read.private", "m.fully_read"]
                    .choose(rng)
                    .unwrap()
                    .to_string(),
                "tag" => ["m.favourite", "m.lowpriority", "u.work"]
                    .choose(rng)
                    .unwrap()
                    .to_string(),
                "rel_type" => ["m.thread", "m.annotation", "m.reference", "m.replace"]
                    .choose(rng)
                    .unwrap()
                    .to_string(),
                _ => "x".to_owned(),
            };
            return valid;
        }
        match rng.gen_range(0..10) {
            0 => "A".repeat([300, 5_000, 60_000][rng.gen_range(0..3)]),
            1 => {
                // Random percent escapes, mostly not UTF-8.
                (0..rng.gen_range(1..40))
                    .map(|_| format!("%{:02X}", rng.r#gen::<u8>()))
                    .collect()
            }
            2 => {
                // A valid value with garbage around it.
                let base = match name {
                    "room_id" | "room_id_or_alias" => known.room(rng).to_owned(),
                    "event_id" => known.event(rng).to_owned(),
                    _ => known.alice.user_id.clone(),
                };
                let junk = HOSTILE_SEGMENTS.choose(rng).unwrap();
                if rng.gen_bool(0.5) {
                    format!("{base}{junk}")
                } else {
                    format!("{junk}{base}")
                }
            }
            _ => HOSTILE_SEGMENTS.choose(rng).unwrap().to_string(),
        }
    }

    fn query_value(&mut self) -> String {
        let rng = &mut self.rng;
        match rng.gen_range(0..8) {
            0 => "A".repeat([100, 3_000, 50_000][rng.gen_range(0..3)]),
            1 => (0..rng.gen_range(1..20))
                .map(|_| format!("%{:02X}", rng.r#gen::<u8>()))
                .collect(),
            _ => HOSTILE_QUERY_VALUES.choose(rng).unwrap().to_string(),
        }
    }

    /// The query parameters the family knows, with valid values.
    fn known_query(&mut self, family: Family) -> Vec<(&'static str, String)> {
        let known = self.known;
        let rng = &mut self.rng;
        let mut q: Vec<(&'static str, String)> = Vec::new();
        let filter_inline = "%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A2%7D%7D%7D";
        match family {
            Family::Sync => {
                if rng.gen_bool(0.7) {
                    let filter = if rng.gen_bool(0.5) {
                        known.filter_id.clone()
                    } else {
                        filter_inline.to_owned()
                    };
                    q.push(("filter", filter));
                }
                if rng.gen_bool(0.5) {
                    q.push(("since", known.since.clone()));
                }
                q.push(("timeout", "0".into()));
                if rng.gen_bool(0.3) {
                    q.push(("full_state", "true".into()));
                }
                if rng.gen_bool(0.3) {
                    let presence = ["online", "offline", "unavailable"].choose(rng).unwrap();
                    q.push(("set_presence", presence.to_string()));
                }
                if rng.gen_bool(0.1) {
                    q.push(("use_state_after", "true".into()));
                }
            }
            Family::SyncWs => {
                q.push(("access_token", known.alice.token.clone()));
                q.push(("since", known.since.clone()));
            }
            Family::Register if rng.gen_bool(0.3) => {
                q.push(("kind", ["user", "guest"].choose(rng).unwrap().to_string()));
            }
            Family::Username => q.push(("username", format!("u{}", rng.gen_range(0..1000)))),
            Family::RegistrationToken => q.push(("token", "abc".into())),
            Family::Messages => {
                q.push(("dir", ["b", "f"].choose(rng).unwrap().to_string()));
                if rng.gen_bool(0.5) {
                    q.push(("from", rng.gen_range(0..100).to_string()));
                }
                if rng.gen_bool(0.3) {
                    q.push(("to", rng.gen_range(0..100).to_string()));
                }
                q.push(("limit", rng.gen_range(0..50).to_string()));
                if rng.gen_bool(0.4) {
                    q.push(("filter", filter_inline.to_owned()));
                }
            }
            Family::Context => {
                q.push(("limit", rng.gen_range(0..20).to_string()));
                if rng.gen_bool(0.4) {
                    q.push(("filter", filter_inline.to_owned()));
                }
            }
            Family::Relations | Family::Threads => {
                if rng.gen_bool(0.5) {
                    q.push(("from", rng.gen_range(0..100).to_string()));
                }
                q.push(("limit", rng.gen_range(0..20).to_string()));
                if family == Family::Relations {
                    q.push(("dir", ["b", "f"].choose(rng).unwrap().to_string()));
                    if rng.gen_bool(0.3) {
                        q.push(("recurse", "true".into()));
                    }
                } else {
                    let include = ["all", "participated"].choose(rng).unwrap();
                    q.push(("include", include.to_string()));
                }
            }
            Family::Timestamp => {
                q.push(("ts", rng.gen_range(0..2_000_000_000_000u64).to_string()));
                q.push(("dir", ["b", "f"].choose(rng).unwrap().to_string()));
            }
            Family::Members => {
                if rng.gen_bool(0.4) {
                    q.push(("at", rng.gen_range(0..100).to_string()));
                }
                if rng.gen_bool(0.4) {
                    let m = ["join", "leave", "invite", "ban", "knock"]
                        .choose(rng)
                        .unwrap();
                    q.push(("membership", m.to_string()));
                }
                if rng.gen_bool(0.3) {
                    q.push(("not_membership", "leave".into()));
                }
            }
            Family::GetState if rng.gen_bool(0.5) => {
                let format = ["event", "content"].choose(rng).unwrap();
                q.push(("format", format.to_string()));
            }
            Family::PublicRooms => {
                if rng.gen_bool(0.5) {
                    q.push(("limit", rng.gen_range(0..10).to_string()));
                }
                if rng.gen_bool(0.3) {
                    q.push(("since", "0".into()));
                }
                if rng.gen_bool(0.3) {
                    q.push(("server", "localhost".into()));
                }
            }
            Family::Search if rng.gen_bool(0.3) => {
                q.push(("next_batch", rng.gen_range(0..10).to_string()));
            }
            Family::Join => {
                if rng.gen_bool(0.3) {
                    q.push(("via", "localhost".into()));
                }
                if rng.gen_bool(0.2) {
                    q.push(("server_name", "localhost".into()));
                }
            }
            _ => {}
        }
        q
    }

    /// The query string, mangled if `hostile`, without the leading `?`.
    fn query(&mut self, family: Family, hostile: bool) -> String {
        let mut params = self.known_query(family);
        if hostile {
            // Replace some values, duplicate some params, add strange ones.
            for param in &mut params {
                if self.rng.gen_bool(0.5) {
                    param.1 = self.query_value();
                }
            }
            if !params.is_empty() && self.rng.gen_bool(0.3) {
                let dup = params.choose(&mut self.rng).unwrap().0;
                let value = self.query_value();
                params.push((dup, value));
            }
            const NAMES: &[&str] = &[
                "limit",
                "from",
                "to",
                "dir",
                "filter",
                "since",
                "timeout",
                "user_id",
                "",
                "%",
                "%FF",
                "a%00b",
                "access_token",
                "format",
                "via",
                "kind",
                "ts",
                "include",
            ];
            for _ in 0..self.rng.gen_range(0..3) {
                let name = NAMES.choose(&mut self.rng).unwrap();
                let value = self.query_value();
                params.push((name, value));
            }
        }
        if family == Family::Sync && params.iter().any(|(k, _)| *k == "since") {
            // With any `since` (every number is a valid token), a numeric timeout would
            // long-poll: keep those at 0. Without `since`, sync answers at once whatever the
            // timeout says.
            for (key, value) in &mut params {
                if *key == "timeout" && value.bytes().all(|b| b.is_ascii_digit()) {
                    *value = "0".into();
                }
            }
        }
        let mut out: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if hostile && self.rng.gen_bool(0.1) {
            let junk = ["&&&", "=", "==x", "&=&", "a", "%", "?", "&a[]=1&a[]=2"];
            out.push(junk.choose(&mut self.rng).unwrap().to_string());
        }
        out.join("&")
    }

    fn body(
        &mut self,
        family: Family,
        method: &Method,
        victim: Option<Victim>,
        hostile: bool,
    ) -> (Option<Vec<u8>>, bool) {
        let takes_body = matches!(*method, Method::POST | Method::PUT);
        if !takes_body && (!hostile || self.rng.gen_bool(0.9)) {
            return (None, false);
        }
        let known = self.known;
        let plausible = plausible_fields(family, &mut self.rng, known, victim);
        if !hostile {
            return (Some(object_text(&plausible).into_bytes()), false);
        }
        let rng = &mut self.rng;
        let text: Vec<u8> = match rng.gen_range(5..100) {
            // Sensible fields with wrong types, some dropped, some added.
            5..=44 => {
                let mut fields: Vec<(String, String)> = plausible
                    .into_iter()
                    .filter_map(|(k, v)| match rng.gen_range(0..10) {
                        0..=2 => None,
                        3..=6 => Some((k, hostile_value(rng, known, 0))),
                        _ => Some((k, v)),
                    })
                    .collect();
                for _ in 0..rng.gen_range(0..3) {
                    let keys = [
                        "type",
                        "identifier",
                        "password",
                        "auth",
                        "content",
                        "preset",
                        "initial_state",
                        "invite",
                        "power_level_content_override",
                        "room",
                        "timeline",
                        "filter",
                        "limit",
                        "",
                        "\u{0}",
                        "m.relates_to",
                    ];
                    let key = keys.choose(rng).unwrap().to_string();
                    fields.push((key, hostile_value(rng, known, 0)));
                }
                fields.shuffle(rng);
                object_text(&fields).into_bytes()
            }
            // Duplicate keys with different types.
            45..=49 => {
                let mut fields = plausible;
                if let Some((k, _)) = fields.first().cloned() {
                    fields.push((k, hostile_value(rng, known, 0)));
                }
                fields.push(("type".into(), "1".into()));
                fields.push(("type".into(), js("m.login.password")));
                object_text(&fields).into_bytes()
            }
            // No body at all.
            50..=54 => return (None, false),
            55..=57 => Vec::new(),
            // Top-level values that are not objects.
            58..=61 => {
                let tops = [
                    "[]", "\"x\"", "1", "null", "true", "1e400", "[{}]", " ", "\"\"",
                ];
                tops.choose(rng).unwrap().as_bytes().to_vec()
            }
            // Deep nesting, far beyond any parser's recursion limit or just inside it.
            62..=65 => {
                let depth = [10_000, 129, 127, 200][rng.gen_range(0..4)];
                match rng.gen_range(0..3) {
                    0 => "[".repeat(depth).into_bytes(),
                    1 => nested(depth, rng.gen_bool(0.5)).into_bytes(),
                    _ => {
                        let mut fields = plausible;
                        let key = fields.first().map_or("content".to_owned(), |f| f.0.clone());
                        fields.push((key, nested(depth.min(126), true)));
                        object_text(&fields).into_bytes()
                    }
                }
            }
            // Invalid UTF-8 inside strings or keys.
            66..=69 => {
                let mut text = object_text(&plausible).into_bytes();
                let bad: &[u8] = [
                    &b"\xff\xfe"[..],
                    b"\xc3\x28",
                    b"\xed\xa0\x80",
                    b"\xf4\x90\x80\x80",
                    b"\xc0\xaf",
                    b"\x00",
                ][rng.gen_range(0..6)];
                let at = text
                    .iter()
                    .position(|&b| b == b'"')
                    .map_or(text.len(), |i| i + 1);
                let tail = text.split_off(at);
                text.extend_from_slice(bad);
                text.extend(tail);
                text
            }
            // Truncated JSON.
            70..=75 => {
                let text = object_text(&plausible).into_bytes();
                let cut = rng.gen_range(0..text.len().max(1));
                text[..cut].to_vec()
            }
            // Huge and odd numbers in every field.
            76..=81 => {
                let numbers = [
                    "1e400",
                    "-0",
                    "18446744073709551616",
                    "9007199254740993",
                    "-9223372036854775809",
                    "1.5",
                    "1e-400",
                    "-1",
                    "0.0000000000000000000001",
                ];
                let fields: Vec<(String, String)> = plausible
                    .into_iter()
                    .map(|(k, _)| (k, numbers.choose(rng).unwrap().to_string()))
                    .collect();
                object_text(&fields).into_bytes()
            }
            // Very long strings, below the size limit.
            82..=85 => {
                let mut fields = plausible;
                let len = rng.gen_range(10_000..self.max_request_size * 9 / 10);
                let key = fields.first().map_or("x".to_owned(), |f| f.0.clone());
                fields.retain(|f| f.0 != key);
                fields.push((key, long_string(rng, len)));
                object_text(&fields).into_bytes()
            }
            // Above the size limit.
            86..=87 => {
                let len = self.max_request_size + rng.gen_range(1..self.max_request_size / 2);
                let mut fields = plausible;
                fields.push(("padding".into(), long_string(rng, len)));
                return (Some(object_text(&fields).into_bytes()), true);
            }
            // String escapes serde refuses or keeps.
            88..=91 => {
                let escapes = [
                    "\"\\ud800\"",
                    "\"\\udfff\\ud800\"",
                    "\"\\u0000\"",
                    "\"\\x41\"",
                    "\"\\\"",
                    "'single'",
                    "NaN",
                    "Infinity",
                    "-",
                    "01",
                    "+1",
                    "0x10",
                ];
                let fields: Vec<(String, String)> = plausible
                    .into_iter()
                    .map(|(k, v)| {
                        if rng.gen_bool(0.5) {
                            (k, escapes.choose(rng).unwrap().to_string())
                        } else {
                            (k, v)
                        }
                    })
                    .collect();
                let mut fields = fields;
                fields.push(("x".to_owned(), escapes.choose(rng).unwrap().to_string()));
                object_text(&fields).into_bytes()
            }
            // Random bytes.
            _ => (0..rng.gen_range(1..200))
                .map(|_| rng.r#gen::<u8>())
                .collect(),
        };
        (Some(text), false)
    }

    /// The `Authorization` header (if any), a description, and an `access_token` query pair.
    fn auth(
        &mut self,
        victim: Option<Victim>,
        hostile: bool,
    ) -> (Option<Vec<u8>>, String, Option<String>) {
        let known = self.known;
        let rng = &mut self.rng;
        let valid = if let Some(victim) = victim {
            victim.token()
        } else if rng.gen_bool(0.85) {
            known.alice.token.clone()
        } else {
            known.bob.token.clone()
        };
        let bearer = |t: &str| Some(format!("Bearer {t}").into_bytes());
        match rng.gen_range(if hostile { 10 } else { 0 }..20) {
            0..=9 => (bearer(&valid), "bearer valid".into(), None),
            10 => (None, "none".into(), None),
            11 => (bearer("syt_bad_token"), "bearer bad".into(), None),
            12 => (Some(b"Bearer ".to_vec()), "bearer empty".into(), None),
            13 => (Some(b"Bearer".to_vec()), "bearer no space".into(), None),
            14 => {
                let bytes: Vec<u8> = (0..rng.gen_range(1..40))
                    .map(|_| rng.gen_range(0x80..=0xffu8))
                    .collect();
                let mut value = b"Bearer ".to_vec();
                value.extend(bytes);
                (Some(value), "bearer garbage bytes".into(), None)
            }
            15 => (
                Some(format!("bEaReR   {valid}\t ").into_bytes()),
                "bearer odd case and whitespace".into(),
                None,
            ),
            16 => (
                Some(b"Basic dXNlcjpwYXNz".to_vec()),
                "basic".into(),
                Some(format!("access_token={valid}")),
            ),
            17 => (
                None,
                "query valid".into(),
                Some(format!("access_token={valid}")),
            ),
            18 => {
                let value = ["", "%FF%00", "syt_bad", "%", &"A".repeat(10_000)]
                    .choose(rng)
                    .unwrap()
                    .to_string();
                (
                    None,
                    "query bad".into(),
                    Some(format!("access_token={value}")),
                )
            }
            _ => (
                bearer(&"x".repeat(20_000)),
                "bearer huge".into(),
                Some(format!("access_token={valid}")),
            ),
        }
    }

    fn spec(&mut self, route: &Route) -> Spec {
        let victim = route.family.sacrificial().then(|| {
            self.victims += 1;
            Victim(self.victims - 1)
        });
        let mode = match self.rng.gen_range(0..10) {
            0 | 1 => Mode::Clean,
            2..=6 => Mode::One(self.rng.gen_range(0..4)),
            _ => Mode::Chaos,
        };
        let mut method = route.method.clone();
        if mode.hostile(0) && self.rng.gen_bool(0.05) {
            let methods = [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::PATCH,
                Method::HEAD,
            ];
            method = methods.choose(&mut self.rng).unwrap().clone();
        }
        // Fill `{name}` placeholders.
        let mut path = String::new();
        let mut rest = route.template;
        while let Some(open) = rest.find('{') {
            path.push_str(&rest[..open]);
            let close = rest[open..].find('}').unwrap() + open;
            let value = self.segment(&rest[open + 1..close], victim, mode.hostile(0));
            path.push_str(&value);
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        if mode.hostile(0) && self.rng.gen_bool(0.05) {
            let mangles = ["/", "//", "/.", "/..", "%2F", "/%00", "?", "#frag"];
            path.push_str(mangles.choose(&mut self.rng).unwrap());
        }
        let mut query = self.query(route.family, mode.hostile(1));
        let (authorization, auth_desc, token_query) = self.auth(victim, mode.hostile(2));
        if let Some(token_query) = token_query {
            if query.is_empty() {
                query = token_query;
            } else {
                query = format!("{query}&{token_query}");
            }
        }
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let (body, oversized) = self.body(route.family, &method, victim, mode.hostile(3));
        let content_type = match self.rng.gen_range(0..10) {
            0 if mode.hostile(3) => None,
            1 if mode.hostile(3) => Some("text/plain"),
            2 if mode.hostile(3) => Some("application/json; charset=latin1"),
            3 if mode.hostile(3) => Some("multipart/form-data; boundary=x"),
            _ => Some("application/json"),
        };
        // Dot segments would be resolved by the URL parser: send those raw.
        let dotted = target.split(['/', '?']).any(|s| {
            matches!(
                s.to_ascii_lowercase().as_str(),
                "." | ".." | "%2e" | "%2e%2e"
            )
        });
        let raw = !oversized && (dotted || self.rng.gen_bool(0.05));
        let mode = match mode {
            Mode::Clean => "clean",
            Mode::One(0) => "hostile path",
            Mode::One(1) => "hostile query",
            Mode::One(2) => "hostile token",
            Mode::One(_) => "hostile body",
            Mode::Chaos => "all hostile",
        };
        Spec {
            method,
            template: route.template,
            target,
            authorization,
            auth_desc: format!("{mode}; token: {auth_desc}"),
            body,
            content_type,
            raw,
            oversized,
            victim,
        }
    }
}

/// Requests worth making every run, whatever the seed.
fn fixed_specs(known: &Known) -> Vec<Spec> {
    let post = |target: &str, body: &[u8], token: Option<&str>| Spec {
        method: Method::POST,
        template: leak(&format!(
            "(fixed) {}",
            target.split('?').next().unwrap_or_default()
        )),
        target: target.to_owned(),
        authorization: token.map(|t| format!("Bearer {t}").into_bytes()),
        auth_desc: match token {
            Some(_) => "fixed; token: bearer valid",
            None => "fixed; token: none",
        }
        .into(),
        body: Some(body.to_vec()),
        content_type: Some("application/json"),
        raw: false,
        oversized: false,
        victim: None,
    };
    let alice = &known.alice;
    let identifier = json!({ "type": "m.id.user", "user": alice.user_id });
    let room = &known.rooms[0];
    let mut specs = vec![
        // LoginInfo objects without a `type`.
        post("/_matrix/client/v3/login", b"{}", None),
        post("/_matrix/client/v3/login", b"", None),
        post(
            "/_matrix/client/v3/login",
            json!({ "identifier": identifier, "password": alice.password })
                .to_string()
                .as_bytes(),
            None,
        ),
        post("/_matrix/client/r0/login", b"{\"password\":1}", None),
        post("/_matrix/client/v3/login", b"{\"type\":1}", None),
        post("/_matrix/client/v3/login", b"{\"type\":null}", None),
        post(
            "/_matrix/client/v3/createRoom",
            "[".repeat(10_000).as_bytes(),
            Some(&alice.token),
        ),
        post(
            "/_matrix/client/v3/createRoom",
            format!("{{\"initial_state\":[{{\"type\":\"m.room.topic\",\"state_key\":\"\",\"content\":{}}}]}}", nested(120, true)).as_bytes(),
            Some(&alice.token),
        ),
        post(
            "/_matrix/client/v3/createRoom",
            b"{\"power_level_content_override\":{\"users_default\":1e400}}",
            Some(&alice.token),
        ),
        post(
            "/_matrix/client/v3/createRoom",
            b"{\"power_level_content_override\":{\"users_default\":9007199254740993}}",
            Some(&alice.token),
        ),
        post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            b"{\"room\":{\"timeline\":{\"limit\":18446744073709551616}}}",
            Some(&alice.token),
        ),
    ];
    let put = |target: String, body: &[u8]| Spec {
        method: Method::PUT,
        template: leak(&format!("(fixed) {target}")),
        ..post(&target, body, Some(&alice.token))
    };
    specs.push(put(
        format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/fixed-float"),
        b"{\"msgtype\":\"m.text\",\"body\":\"x\",\"n\":1.5}",
    ));
    specs.push(put(
        format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/fixed-big"),
        b"{\"msgtype\":\"m.text\",\"body\":\"x\",\"n\":9007199254740993}",
    ));
    specs.push(put(
        format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
        b"{\"users\":{\"@alice:localhost\":1e400}}",
    ));
    specs.push(put(
        format!("/_matrix/client/v3/rooms/{room}/typing/{}", alice.user_id),
        b"{\"typing\":true,\"timeout\":18446744073709551615}",
    ));
    specs.extend(boundary_specs(known));
    specs
}

/// Pagination tokens, limits and timestamps at the edges of the integer types, on otherwise
/// valid requests: overflow in the arithmetic around them.
fn boundary_specs(known: &Known) -> Vec<Spec> {
    const VALUES: [&str; 6] = [
        "0",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551614",
        "18446744073709551615",
    ];
    // `{room}`, `{event}` and `{user}` are filled in; `V` is the boundary value.
    const GETS: [&str; 21] = [
        "/v3/rooms/{room}/messages?dir=b&from=V",
        "/v3/rooms/{room}/messages?dir=f&from=V",
        "/v3/rooms/{room}/messages?dir=b&to=V",
        "/v3/rooms/{room}/messages?dir=f&limit=V",
        "/v3/rooms/{room}/messages?dir=b&filter=%7B%22limit%22%3AV%7D",
        "/v3/rooms/{room}/context/{event}?limit=V",
        "/v1/rooms/{room}/relations/{event}?from=V",
        "/v1/rooms/{room}/relations/{event}?dir=f&from=V",
        "/v1/rooms/{room}/relations/{event}?limit=V",
        "/v1/rooms/{room}/relations/{event}/m.thread?from=V&dir=f",
        "/v1/rooms/{room}/threads?from=V",
        "/v1/rooms/{room}/threads?limit=V",
        "/v3/rooms/{room}/members?at=V",
        "/v1/rooms/{room}/timestamp_to_event?ts=V&dir=f",
        "/v1/rooms/{room}/timestamp_to_event?ts=V&dir=b",
        "/v3/sync?since=V&timeout=0",
        "/v3/sync?timeout=0&filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3AV%7D%7D%7D",
        "/v3/publicRooms?since=V",
        "/v3/publicRooms?limit=V",
        "/v3/user/{user}/filter/V",
        "/v3/presence/{user}/status?x=V",
    ];
    const POSTS: [(&str, &str); 5] = [
        (
            "/v3/search?next_batch=V",
            "{\"search_categories\":{\"room_events\":{\"search_term\":\"hello\"}}}",
        ),
        (
            "/v3/search",
            "{\"search_categories\":{\"room_events\":{\"search_term\":\"hello\",\"event_context\":{\"before_limit\":V,\"after_limit\":V}}}}",
        ),
        (
            "/v3/search",
            "{\"search_categories\":{\"room_events\":{\"search_term\":\"hello\",\"filter\":{\"limit\":V}}}}",
        ),
        (
            "/v3/user_directory/search",
            "{\"search_term\":\"a\",\"limit\":V}",
        ),
        ("/v3/publicRooms", "{\"limit\":V,\"since\":\"V\"}"),
    ];
    let fill = |pattern: &str, value: &str| {
        // The value first: ids may contain a `V` themselves.
        pattern
            .replace('V', value)
            .replace("{room}", &known.rooms[0])
            .replace("{event}", &known.events[0])
            .replace("{user}", &known.alice.user_id)
    };
    let mut specs = Vec::new();
    for value in VALUES {
        let requests = GETS.iter().map(|path| (Method::GET, *path, None)).chain(
            POSTS
                .iter()
                .map(|(path, body)| (Method::POST, *path, Some(*body))),
        );
        for (method, path, body) in requests {
            specs.push(Spec {
                method,
                template: leak(&format!("(boundary) /_matrix/client{path}")),
                target: format!("/_matrix/client{}", fill(path, value)),
                authorization: Some(format!("Bearer {}", known.alice.token).into_bytes()),
                auth_desc: "boundary; token: bearer valid".into(),
                body: body.map(|b| fill(b, value).into_bytes()),
                content_type: Some("application/json"),
                raw: false,
                oversized: false,
                victim: None,
            });
        }
    }
    specs
}

async fn send(http: &reqwest::Client, base: &str, addr: &str, spec: &Spec) -> Outcome {
    if spec.raw {
        return send_raw(addr, spec).await;
    }
    let url = match reqwest::Url::parse(&format!("{base}{}", spec.target)) {
        Ok(url) => url,
        Err(_) => return send_raw(addr, spec).await,
    };
    let mut request = http.request(spec.method.clone(), url);
    if let Some(value) = &spec.authorization {
        match HeaderValue::from_bytes(value) {
            Ok(value) => request = request.header(reqwest::header::AUTHORIZATION, value),
            Err(_) => return send_raw(addr, spec).await,
        }
    }
    if let Some(content_type) = spec.content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type);
    }
    if let Some(body) = &spec.body {
        request = request.body(body.clone());
    }
    let response = match request.send().await {
        Ok(response) => response,
        // A URL reqwest will not send (longer than an `http::Uri` can be): send it raw.
        Err(e) if e.is_builder() => return send_raw(addr, spec).await,
        Err(e) => return Outcome::Transport(error_chain(&e)),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) => Outcome::Status(status, raw_prefix(&bytes, 2000)),
        Err(e) => Outcome::Transport(format!("status {status}, body: {}", error_chain(&e))),
    }
}

/// One request over a fresh TCP connection, byte for byte as generated.
async fn send_raw(addr: &str, spec: &Spec) -> Outcome {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut head = Vec::new();
        head.extend_from_slice(spec.method.as_str().as_bytes());
        head.push(b' ');
        // Bytes the request line cannot carry at all are escaped; the rest goes as is.
        for &b in spec.target.as_bytes() {
            if b <= b' ' || b == 0x7f {
                head.extend_from_slice(format!("%{b:02X}").as_bytes());
            } else {
                head.push(b);
            }
        }
        head.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some(value) = &spec.authorization {
            head.extend_from_slice(b"Authorization: ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        if let Some(content_type) = spec.content_type {
            head.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        let body = spec.body.as_deref().unwrap_or_default();
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        head.extend_from_slice(body);
        // The server may answer (and close) before reading everything: still read the answer.
        let _ = stream.write_all(&head).await;
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response).await;
        if response.is_empty() {
            return Err(format!("connection closed without a response ({read:?})"));
        }
        let text = String::from_utf8_lossy(&response);
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("unparseable response: {}", prefix(&response, 200)))?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        Ok(Outcome::Status(status, raw_prefix(body.as_bytes(), 2000)))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Transport(format!("raw: {e}")),
        Err(_) => Outcome::Transport(format!("raw: no response within {REQUEST_TIMEOUT:?}")),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(out, ": {e}");
        source = e.source();
    }
    out
}

/// The first `len` bytes as text, as they are.
fn raw_prefix(bytes: &[u8], len: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(len)]).into_owned()
}

/// The first `len` bytes as printable text, for reports.
fn prefix(bytes: &[u8], len: usize) -> String {
    let cut = &bytes[..bytes.len().min(len)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > len {
        let _ = write!(text, "… ({} bytes)", bytes.len());
    }
    text.escape_debug().to_string()
}

// ---------------------------------------------------------------------------------------------
// Deep nesting that survives parsing
// ---------------------------------------------------------------------------------------------

/// One request outside the random run; `None` token means no `Authorization` header.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    target: String,
    token: &str,
    body: Option<String>,
) -> (Spec, Outcome) {
    let spec = Spec {
        method,
        template: "deep probe",
        target,
        authorization: Some(format!("Bearer {token}").into_bytes()),
        auth_desc: "probe; token: bearer valid".into(),
        body: body.map(String::into_bytes),
        content_type: Some("application/json"),
        raw: false,
        oversized: false,
        victim: None,
    };
    let addr = base.trim_start_matches("http://");
    let outcome = send(http, base, addr, &spec).await;
    (spec, outcome)
}

fn probe_failure(context: &str, spec: &Spec, outcome: &Outcome) -> Option<String> {
    let detail = match outcome {
        Outcome::Status(status, _) if *status < 500 => return None,
        Outcome::Status(status, body) => format!("{status} {}", prefix(body.as_bytes(), 300)),
        Outcome::Transport(e) => format!("transport error: {}", prefix(e.as_bytes(), 300)),
    };
    let body = spec
        .body
        .as_deref()
        .map_or("<none>".to_owned(), |b| prefix(b, 120));
    Some(format!(
        "{context}: {} {} -> {detail}\n    body: {body}",
        spec.method,
        prefix(spec.target.as_bytes(), 200)
    ))
}

/// Reads everything of `user`'s: syncs, and the timeline, state and members of every joined
/// room, plus `extra` paths. Returns the reads that failed.
async fn read_everything(
    base: &str,
    http: &reqwest::Client,
    user: &TestUser,
    extra: Vec<String>,
    context: &str,
) -> Vec<String> {
    let v3 = "/_matrix/client/v3";
    let mut reads = vec![
        format!("{v3}/sync?timeout=0"),
        format!("{v3}/sync?timeout=0&full_state=true"),
        format!("{v3}/joined_rooms"),
        format!("{v3}/account/whoami"),
    ];
    reads.extend(extra);
    let target = format!("{v3}/joined_rooms");
    let joined = match probe(http, base, Method::GET, target, &user.token, None).await {
        (_, Outcome::Status(200, body)) => serde_json::from_str(&body).unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    for room in joined["joined_rooms"].as_array().into_iter().flatten() {
        let room = room.as_str().unwrap_or_default();
        reads.push(format!("{v3}/rooms/{room}/messages?dir=b&limit=100"));
        reads.push(format!("{v3}/rooms/{room}/messages?dir=f&limit=100"));
        reads.push(format!("{v3}/rooms/{room}/state"));
        reads.push(format!("{v3}/rooms/{room}/members"));
        reads.push(format!("{v3}/rooms/{room}/threads"));
    }
    reads.push(format!("{v3}/search"));
    let mut failures = Vec::new();
    for target in reads {
        let (method, body) = if target.ends_with("/search") {
            let body = json!({ "search_categories": { "room_events": { "search_term": "a" } } });
            (Method::POST, Some(body.to_string()))
        } else {
            (Method::GET, None)
        };
        let (spec, outcome) = probe(http, base, method, target, &user.token, body).await;
        if let Some(failure) = probe_failure(context, &spec, &outcome) {
            failures.push(failure);
        }
    }
    failures
}

/// Bodies nested just below and at serde_json's recursion limit pass the request parser; what
/// the server stores wraps them one or two levels deeper. One fresh user per kind of write, then
/// every read of that user's data must still answer below 500.
async fn deep_probes(
    server: &TestServer,
    http: &reqwest::Client,
) -> (Vec<String>, Vec<(TestUser, Vec<String>)>) {
    const DEPTHS: [usize; 6] = [100, 120, 124, 126, 127, 128];
    const KINDS: [&str; 11] = [
        "account_data",
        "room_account_data",
        "event",
        "state",
        "state_replaced",
        "redacted",
        "to_device",
        "creation_content",
        "initial_state",
        "power_levels",
        "tag",
    ];
    let v3 = "/_matrix/client/v3";
    let base = server.base.as_str();
    let mut failures = Vec::new();
    let mut users = Vec::new();
    for kind in KINDS {
        let user = server
            .register(&format!("deep_{kind}"), "deep-password")
            .await;
        let token = user.token.as_str();
        let me = &user.user_id;
        let room = create_room(server, &user, json!({ "preset": "private_chat" })).await;
        let mut reads = vec![format!("{v3}/user/{me}/rooms/{room}/tags")];
        let mut events = Vec::new();
        for depth in DEPTHS {
            let deep = |levels: usize| nested(levels, true);
            let (method, target, body) = match kind {
                "account_data" => (
                    Method::PUT,
                    format!("{v3}/user/{me}/account_data/org.hostile.deep{depth}"),
                    deep(depth),
                ),
                "room_account_data" => (
                    Method::PUT,
                    format!("{v3}/user/{me}/rooms/{room}/account_data/org.hostile.deep{depth}"),
                    deep(depth),
                ),
                "event" | "redacted" => (
                    Method::PUT,
                    format!("{v3}/rooms/{room}/send/org.hostile.deep/deep{depth}"),
                    deep(depth),
                ),
                "state" | "state_replaced" => (
                    Method::PUT,
                    format!("{v3}/rooms/{room}/state/org.hostile.deep/k{depth}"),
                    deep(depth),
                ),
                "to_device" => (
                    Method::PUT,
                    format!("{v3}/sendToDevice/org.hostile.deep/deep{depth}"),
                    json!({ "messages": { me.clone(): { user.device_id.clone(): "DEEP" } } })
                        .to_string()
                        .replace("\"DEEP\"", &deep(depth - 3)),
                ),
                "creation_content" => (
                    Method::POST,
                    format!("{v3}/createRoom"),
                    format!("{{\"creation_content\":{}}}", deep(depth - 1)),
                ),
                "initial_state" => (
                    Method::POST,
                    format!("{v3}/createRoom"),
                    format!(
                        "{{\"initial_state\":[{{\"type\":\"org.hostile.deep\",\"state_key\":\"\",\
                         \"content\":{}}}]}}",
                        deep(depth - 3)
                    ),
                ),
                "power_levels" => (
                    Method::POST,
                    format!("{v3}/createRoom"),
                    format!(
                        "{{\"power_level_content_override\":{{\"x\":{}}}}}",
                        deep(depth - 2)
                    ),
                ),
                _ => (
                    Method::PUT,
                    format!("{v3}/user/{me}/rooms/{room}/tags/u.deep{depth}"),
                    format!("{{\"order\":0.5,\"x\":{}}}", deep(depth - 1)),
                ),
            };
            let (spec, outcome) = probe(http, base, method, target, token, Some(body)).await;
            if let Some(failure) = probe_failure(&format!("deep {kind} write"), &spec, &outcome) {
                failures.push(failure);
            }
            let accepted = matches!(outcome, Outcome::Status(200, _));
            if !accepted {
                continue;
            }
            match kind {
                "account_data" => {
                    reads.push(format!(
                        "{v3}/user/{me}/account_data/org.hostile.deep{depth}"
                    ));
                }
                "room_account_data" => reads.push(format!(
                    "{v3}/user/{me}/rooms/{room}/account_data/org.hostile.deep{depth}"
                )),
                "event" | "redacted" => {
                    if let Outcome::Status(_, body) = &outcome
                        && let Ok(response) = serde_json::from_str::<serde_json::Value>(body)
                        && let Some(id) = response["event_id"].as_str()
                    {
                        events.push(id.to_owned());
                        reads.push(format!("{v3}/rooms/{room}/event/{id}"));
                        reads.push(format!("{v3}/rooms/{room}/context/{id}?limit=3"));
                        reads.push(format!("{v3}/rooms/{room}/relations/{id}"));
                    }
                }
                "state" | "state_replaced" => {
                    reads.push(format!("{v3}/rooms/{room}/state/org.hostile.deep/k{depth}"));
                }
                _ => {}
            }
        }
        // Writes that embed what is already stored.
        let follow_ups: Vec<(Method, String, String)> = match kind {
            "state_replaced" => DEPTHS
                .iter()
                .map(|depth| {
                    let target = format!("{v3}/rooms/{room}/state/org.hostile.deep/k{depth}");
                    (Method::PUT, target, "{\"v\":1}".to_owned())
                })
                .collect(),
            "redacted" => events
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let target = format!("{v3}/rooms/{room}/redact/{id}/r{i}");
                    (Method::PUT, target, "{}".to_owned())
                })
                .collect(),
            _ => Vec::new(),
        };
        for (method, target, body) in follow_ups {
            let (spec, outcome) = probe(http, base, method, target, token, Some(body)).await;
            if let Some(failure) = probe_failure(&format!("deep {kind} follow-up"), &spec, &outcome)
            {
                failures.push(failure);
            }
        }
        let context = format!("read after deep {kind} writes");
        failures.extend(read_everything(base, http, &user, reads.clone(), &context).await);
        users.push((user, reads));
    }
    (failures, users)
}

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

/// Panics on the server's runtime, by site ("file:line: message") with counts.
type PanicLog = Arc<Mutex<BTreeMap<String, usize>>>;

/// Counts panics on threads of the server's runtime, chaining to the previous hook for the
/// first panic at each site (repeats are only counted, so a hot panic does not flood the log).
fn install_panic_counter() -> PanicLog {
    let log: PanicLog = Arc::default();
    let previous = std::panic::take_hook();
    let hook_log = log.clone();
    std::panic::set_hook(Box::new(move |info| {
        let ours = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with(THREAD_NAME));
        if !ours {
            return previous(info);
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string payload>".into());
        let site = match info.location() {
            Some(l) => format!("{}:{}: {message}", l.file(), l.line()),
            None => message,
        };
        let first = {
            let mut log = hook_log.lock().unwrap_or_else(|e| e.into_inner());
            let count = log.entry(site).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            previous(info);
        }
    }));
    log
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

async fn setup(server: &TestServer) -> Known {
    let alice = server.register("alice", "alice-password").await;
    let bob = server.register("bob", "bob-password").await;
    let carol = server.register("carol", "carol-password").await;

    let mut rooms = Vec::new();
    for body in [
        json!({ "preset": "public_chat", "name": "hostile" }),
        json!({ "preset": "public_chat", "room_version": "11" }),
        json!({ "preset": "private_chat", "invite": [bob.user_id] }),
    ] {
        rooms.push(create_room(server, &alice, body).await);
    }
    let (status, body) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "preset": "public_chat", "room_version": "12" }),
        )
        .await;
    if status == 200 {
        rooms.push(body["room_id"].as_str().unwrap().to_owned());
    }
    for room in &rooms[..2] {
        let (status, body) = server
            .post(
                &format!("/_matrix/client/v3/join/{room}"),
                Some(&bob.token),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "bob joins: {body}");
    }
    let mut events = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        for j in 0..3 {
            events.push(send_text(server, &alice, room, &format!("setup-{i}-{j}"), "hello").await);
        }
    }
    let thread_root = events[0].clone();
    let (status, body) = server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/setup-thread",
                rooms[0]
            ),
            Some(&bob.token),
            json!({
                "msgtype": "m.text",
                "body": "in thread",
                "m.relates_to": { "rel_type": "m.thread", "event_id": thread_root },
            }),
        )
        .await;
    assert_eq!(status, 200, "thread reply: {body}");
    events.push(body["event_id"].as_str().unwrap().to_owned());

    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            Some(&alice.token),
            json!({ "room": { "timeline": { "limit": 3 } } }),
        )
        .await;
    assert_eq!(status, 200, "filter: {body}");
    let filter_id = body["filter_id"].as_str().unwrap().to_owned();

    let alias = "#hostile:localhost".to_owned();
    let (status, body) = server
        .put(
            "/_matrix/client/v3/directory/room/%23hostile:localhost",
            Some(&alice.token),
            json!({ "room_id": rooms[0] }),
        )
        .await;
    assert_eq!(status, 200, "alias: {body}");

    let (status, body) = server
        .get("/_matrix/client/v3/sync?timeout=0", Some(&alice.token))
        .await;
    assert_eq!(status, 200, "sync: {body}");
    let since = body["next_batch"].as_str().unwrap().to_owned();

    Known {
        alice,
        bob,
        carol,
        rooms,
        events,
        filter_id,
        alias,
        since,
    }
}

#[test]
fn hostile_input_against_every_client_endpoint() {
    // The server's own account of its internal errors, next to the failing requests
    // (`HEARTH_HOSTILE_LOG` takes other directives, e.g. `hearth=debug`).
    let directives = std::env::var("HEARTH_HOSTILE_LOG").unwrap_or_else(|_| "hearth=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_test_writer()
        .try_init();
    let panics = install_panic_counter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(panics));
}

async fn run(panics: PanicLog) {
    let seed: u64 = env_or("HEARTH_HOSTILE_SEED", DEFAULT_SEED);
    let count: usize = env_or("HEARTH_HOSTILE_COUNT", DEFAULT_COUNT);
    let started = Instant::now();

    let mut server = TestServer::start().await;
    let known = setup(&server).await;
    let routes = route_table();

    // Every route once, the fixed cases, then random routes: all generated before sending so
    // the requests depend on the seed only.
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        known: &known,
        max_request_size: server.config.max_request_size,
        victims: 0,
    };
    let mut specs: Vec<Spec> = routes.iter().map(|r| generator.spec(r)).collect();
    specs.extend(fixed_specs(&known));
    while specs.len() < count.max(routes.len()) {
        let route = routes.choose(&mut generator.rng).unwrap().clone();
        specs.push(generator.spec(&route));
    }
    let sessions = register_victims(&server, generator.victims).await;
    for spec in &mut specs {
        if let Some(victim) = spec.victim {
            spec.fill_in(victim, &sessions[victim.0]);
        }
    }
    let generated = started.elapsed();

    // A connection per request: the server may close a kept-alive connection after refusing
    // a request without reading its body, and a reused connection would then fail the next
    // request for a reason that is not that request's.
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let outcomes: Vec<(usize, Outcome)> = futures::stream::iter(specs.iter().enumerate())
        .map(|(i, spec)| {
            let (http, base, addr) = (&client, &base, &addr);
            async move { (i, send(http, base, addr, spec).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let sent = started.elapsed();

    // Tally and group the failures by endpoint and kind.
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    let mut failures = 0;
    let mut per_route: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (i, outcome) in &outcomes {
        let spec = &specs[*i];
        let code = match outcome {
            Outcome::Status(status, _) => status.to_string(),
            Outcome::Transport(_) => "transport".into(),
        };
        *per_route
            .entry(format!("{} {}", spec.method, spec.template))
            .or_default()
            .entry(code)
            .or_default() += 1;
        let (class, failed, detail) = match outcome {
            Outcome::Status(status, body) => (
                format!("{}xx", status / 100),
                *status >= 500,
                format!(
                    "status {status}, response: {}",
                    prefix(body.as_bytes(), 300)
                ),
            ),
            // The server may refuse an oversized body by answering before reading it all and
            // closing the connection: the client then fails writing the rest.
            Outcome::Transport(e) if spec.oversized && e.contains("error writing a body") => {
                ("oversized body cut off".into(), false, String::new())
            }
            Outcome::Transport(e) => (
                "transport".into(),
                true,
                format!("transport error: {}", prefix(e.as_bytes(), 400)),
            ),
        };
        *classes.entry(class).or_default() += 1;
        if failed {
            failures += 1;
            let kind = match outcome {
                Outcome::Status(status, _) => status.to_string(),
                Outcome::Transport(_) => "transport".into(),
            };
            let key = format!("{} {} -> {kind}", spec.method, spec.template);
            let entry = groups.entry(key).or_insert((0, *i, detail.clone()));
            entry.0 += 1;
            if *i < entry.1 {
                (entry.1, entry.2) = (*i, detail);
            }
        }
    }

    // What hostile writes stored must read back; then the server must still work.
    let (mut after, mut readers) = deep_probes(&server, &client).await;
    for user in [&known.alice, &known.bob] {
        let context = format!("read as {} after the run", user.user_id);
        after.extend(read_everything(&server.base, &client, user, Vec::new(), &context).await);
        readers.push((user.clone(), Vec::new()));
    }
    let (status, body) = server.get("/_matrix/client/versions", None).await;
    let versions_ok = status == 200;
    let (sync_status, sync_body) = server
        .get(
            "/_matrix/client/v3/sync?timeout=0",
            Some(&known.alice.token),
        )
        .await;
    let sync_ok = sync_status == 200;

    // Caches hide what storage cannot give back: read it all again from a restarted server.
    let stopping = Instant::now();
    server.stop().await;
    let stopped_in = stopping.elapsed();
    if stopped_in > Duration::from_secs(5) {
        after.push(format!("shutting the server down took {stopped_in:?}"));
    }
    match hearth::Server::start(server.config.clone()).await {
        Ok(restarted) => {
            let base = format!("http://{}", restarted.client_addr());
            for (user, reads) in readers {
                let context = format!("read as {} after a restart", user.user_id);
                after.extend(read_everything(&base, &client, &user, reads, &context).await);
            }
            restarted.shutdown().await;
        }
        Err(e) => after.push(format!(
            "the server does not start again on its data dir after shutdown: {e:?}"
        )),
    }
    let total = started.elapsed();

    let panic_log = panics.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let panic_count: usize = panic_log.values().sum();
    println!(
        "hostile: seed {seed}, {} requests over {} routes (generated in {generated:?}, sent in \
         {:?}, total {total:?}); outcomes {classes:?}; {failures} failures, {} failed reads \
         after, {panic_count} panics",
        specs.len(),
        routes.len(),
        sent - generated,
        after.len(),
    );

    if std::env::var_os("HEARTH_HOSTILE_VERBOSE").is_some() {
        for (route, codes) in &per_route {
            println!("  {route}: {codes:?}");
        }
    }

    if failures == 0 && after.is_empty() && panic_count == 0 && versions_ok && sync_ok {
        return;
    }
    let mut report = format!(
        "hostile input broke the server (seed {seed}, HEARTH_HOSTILE_SEED={seed} \
         HEARTH_HOSTILE_COUNT={count} to reproduce): {failures} failing requests in {} groups, \
         {} failing reads and probes after the run, {panic_count} panics\n",
        groups.len(),
        after.len()
    );
    if !versions_ok {
        let _ = writeln!(report, "GET /versions afterwards: {status} {body}");
    }
    if !sync_ok {
        let _ = writeln!(report, "alice's sync afterwards: {sync_status} {sync_body}");
    }
    if !after.is_empty() {
        let _ = writeln!(
            report,
            "{} reads and probes after the run failed:",
            after.len()
        );
        for failure in after.iter().take(REPORTED_GROUPS) {
            let _ = writeln!(report, "  {failure}");
        }
    }
    for (site, n) in panic_log.iter().take(REPORTED_GROUPS) {
        let _ = writeln!(report, "panic ×{n}: {site}");
    }
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.sort_by_key(|(_, (_, first, _))| *first);
    for (key, (n, first, detail)) in ordered.iter().take(REPORTED_GROUPS) {
        let spec = &specs[*first];
        let body = spec
            .body
            .as_deref()
            .map_or("<none>".to_owned(), |b| prefix(b, 200));
        let _ = writeln!(
            report,
            "×{n} {key}\n    first: {} {} ({}{}{})\n    body: {body}\n    {detail}",
            spec.method,
            prefix(spec.target.as_bytes(), 200),
            spec.auth_desc,
            if spec.raw { ", raw socket" } else { "" },
            if spec.oversized { ", oversized" } else { "" },
        );
    }
    panic!("{report}");
}
