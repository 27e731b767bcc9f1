//! Hostile building blocks: path segments, query values, JSON values and plausible fields.

use super::*;

// ---------------------------------------------------------------------------------------------
// Hostile building blocks
// ---------------------------------------------------------------------------------------------

/// Path segments in wire form (already percent-encoded where meant to be).
pub(super) const HOSTILE_SEGMENTS: &[&str] = &[
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
pub(super) const HOSTILE_QUERY_VALUES: &[&str] = &[
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
pub(super) fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

pub(super) fn long_string(rng: &mut StdRng, len: usize) -> String {
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
pub(super) fn nested(depth: usize, objects: bool) -> String {
    if objects {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// A random JSON value in text form: wrong types, huge numbers, odd strings.
pub(super) fn hostile_value(rng: &mut StdRng, known: &Known, depth: u32) -> String {
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
pub(super) fn plausible_fields(
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
        Family::KeysUpload => {
            let device = &alice.device_id;
            if rng.gen_bool(0.5) {
                let keys = json!({
                    "user_id": alice.user_id,
                    "device_id": device,
                    "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                    "keys": { format!("curve25519:{device}"): "Y3VydmU", format!("ed25519:{device}"): "ZWQ" },
                    "signatures": { alice.user_id.clone(): { format!("ed25519:{device}"): "c2ln" } },
                });
                f.push(("device_keys", keys.to_string()));
            }
            let id = rng.gen_range(0..20);
            f.push((
                "one_time_keys",
                json!({ format!("signed_curve25519:H{id}"): { "key": format!("k{id}"), "signatures": {} } })
                    .to_string(),
            ));
            if rng.gen_bool(0.3) {
                f.push((
                    "fallback_keys",
                    json!({ "signed_curve25519:F1": { "key": "f", "fallback": true, "signatures": {} } })
                        .to_string(),
                ));
            }
        }
        Family::KeysQuery => {
            f.push((
                "device_keys",
                json!({ known.bob.user_id.clone(): [], alice.user_id.clone(): [alice.device_id] })
                    .to_string(),
            ));
            f.push(("timeout", "1000".into()));
        }
        Family::KeysClaim => f.push((
            "one_time_keys",
            json!({ known.bob.user_id.clone(): { known.bob.device_id.clone(): "signed_curve25519" } })
                .to_string(),
        )),
        Family::SigningKeys => {
            let key = json!({
                "user_id": alice.user_id,
                "usage": ["master"],
                "keys": { "ed25519:bWFzdGVy": "bWFzdGVy" },
            });
            f.push(("master_key", key.to_string()));
            if rng.gen_bool(0.5) {
                let mut other = key.clone();
                other["usage"] = json!(["self_signing"]);
                f.push(("self_signing_key", other.to_string()));
            }
        }
        Family::Signatures => {
            let signed = json!({
                alice.user_id.clone(): { alice.device_id.clone(): {
                    "user_id": alice.user_id, "device_id": alice.device_id,
                    "keys": {}, "algorithms": [],
                    "signatures": { alice.user_id.clone(): { "ed25519:bWFzdGVy": "c2ln" } },
                } },
            });
            if let Some(object) = signed.as_object() {
                for (key, value) in object {
                    f.push((leak(key), value.to_string()));
                }
            }
        }
        Family::BackupVersion => {
            f.push(("algorithm", js("m.megolm_backup.v1.curve25519-aes-sha2")));
            f.push((
                "auth_data",
                json!({ "public_key": "cHVibGlj", "signatures": {} }).to_string(),
            ));
            if rng.gen_bool(0.3) {
                f.push(("version", js("1")));
            }
        }
        Family::BackupKeys => {
            let session = json!({
                "first_message_index": rng.gen_range(0..5),
                "forwarded_count": 0,
                "is_verified": rng.gen_bool(0.5),
                "session_data": { "ephemeral": "ZQ", "ciphertext": "Yw", "mac": "bQ" },
            });
            let rooms = json!({ known.room(rng): { "sessions": { "session0": session.clone() } } });
            // The three routes take the whole set, one room's sessions, or one session.
            f.push(("rooms", rooms.to_string()));
            f.push(("sessions", json!({ "session1": session.clone() }).to_string()));
            if let Some(object) = session.as_object() {
                for (key, value) in object {
                    f.push((leak(key), value.to_string()));
                }
            }
        }
        Family::PushRule => {
            f.push(("actions", json!(["notify", { "set_tweak": "highlight" }]).to_string()));
            f.push((
                "conditions",
                json!([{ "kind": "event_match", "key": "content.body", "pattern": "hostile*" }])
                    .to_string(),
            ));
            f.push(("pattern", js("hostile")));
        }
        Family::PushRuleEnabled => f.push(("enabled", rng.gen_bool(0.5).to_string())),
        Family::PushRuleActions => f.push(("actions", json!(["dont_notify"]).to_string())),
        Family::Pusher => {
            f.push(("kind", if rng.gen_bool(0.8) { js("http") } else { "null".into() }));
            f.push(("app_id", js("org.example.hostile")));
            f.push(("pushkey", js(&format!("key{}", rng.gen_range(0..3)))));
            f.push(("app_display_name", js("hostile")));
            f.push(("device_display_name", js("hostile")));
            f.push(("lang", js("en")));
            f.push((
                "data",
                json!({ "url": "http://127.0.0.1:1/_matrix/push/v1/notify", "format": "event_id_only" })
                    .to_string(),
            ));
            if rng.gen_bool(0.3) {
                f.push(("append", "true".into()));
            }
        }
        Family::MediaUpload => f.push(("bytes", js("hostile media body"))),
        Family::MediaPreview => {}
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

pub(super) fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

pub(super) fn object_text(fields: &[(String, String)]) -> String {
    let items: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", js(k)))
        .collect();
    format!("{{{}}}", items.join(","))
}
