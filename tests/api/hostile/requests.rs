//! Requests: the generator, the fixed and boundary cases, and sending them (also raw).

use super::*;

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub(super) method: Method,
    pub(super) template: &'static str,
    /// Path and query in wire form.
    pub(super) target: String,
    /// The `Authorization` header value, if any.
    pub(super) authorization: Option<Vec<u8>>,
    pub(super) auth_desc: String,
    pub(super) body: Option<Vec<u8>>,
    pub(super) content_type: Option<&'static str>,
    /// Sent over a bare TCP socket, so that `..` and raw bytes reach the server unchanged.
    pub(super) raw: bool,
    /// Bigger than the server's request size limit.
    pub(super) oversized: bool,
    /// Whose placeholders to fill in.
    pub(super) victim: Option<Victim>,
}

impl Spec {
    /// Puts the registered victim's token, device and refresh token in place.
    pub(super) fn fill_in(&mut self, victim: Victim, session: &VictimSession) {
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

pub(super) fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
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

pub(super) struct VictimSession {
    pub(super) token: String,
    pub(super) device_id: String,
    pub(super) refresh_token: String,
}

/// Registers the victims the generated requests refer to.
pub(super) async fn register_victims(server: &TestServer, count: usize) -> Vec<VictimSession> {
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

pub(super) enum Outcome {
    Status(u16, String),
    Transport(String),
}

pub(super) struct Generator<'a> {
    pub(super) rng: StdRng,
    pub(super) known: &'a Known,
    pub(super) max_request_size: usize,
    pub(super) victims: usize,
}

/// How hostile one request is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Everything valid: reaches the handler's real work.
    Clean,
    /// One part hostile (0 path, 1 query, 2 token, 3 body), the rest valid: gets past the
    /// other checks with the hostile part.
    One(u8),
    /// Everything random.
    Chaos,
}

impl Mode {
    pub(super) fn hostile(self, part: u8) -> bool {
        match self {
            Mode::Clean => false,
            Mode::One(p) => p == part,
            Mode::Chaos => true,
        }
    }
}

impl Generator<'_> {
    /// A value for a path parameter: valid unless `hostile`, and then still half the time.
    pub(super) fn segment(&mut self, name: &str, victim: Option<Victim>, hostile: bool) -> String {
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
                "kind" => ["override", "underride", "sender", "room", "content"]
                    .choose(rng)
                    .unwrap()
                    .to_string(),
                "rule_id" => match rng.gen_range(0..4) {
                    0 => ".m.rule.master".to_owned(),
                    1 => ".m.rule.contains_user_name".to_owned(),
                    2 => known.room(rng).to_owned(),
                    _ => format!("hostile.rule{}", rng.gen_range(0..5)),
                },
                "version" => rng.gen_range(1..4).to_string(),
                "session_id" => format!("session{}", rng.gen_range(0..3)),
                "server_name" => "localhost".to_owned(),
                "media_id" => format!("media{}", rng.gen_range(0..3)),
                "filename" => ["a.png", "b%20c.txt", "x"].choose(rng).unwrap().to_string(),
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

    pub(super) fn query_value(&mut self) -> String {
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
    pub(super) fn known_query(&mut self, family: Family) -> Vec<(&'static str, String)> {
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
            Family::BackupKeys => q.push(("version", rng.gen_range(1..4).to_string())),
            Family::PushRule => {
                if rng.gen_bool(0.3) {
                    q.push(("before", ".m.rule.master".into()));
                }
                if rng.gen_bool(0.3) {
                    q.push(("after", "hostile.rule0".into()));
                }
            }
            Family::MediaUpload if rng.gen_bool(0.5) => {
                q.push(("filename", "hostile.png".into()));
            }
            Family::MediaPreview => {
                let url = [
                    "http://127.0.0.1:1/",
                    "https://example.invalid/",
                    "ftp://x/",
                ];
                q.push(("url", url.choose(rng).unwrap().to_string()));
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
    pub(super) fn query(&mut self, family: Family, hostile: bool) -> String {
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

    pub(super) fn body(
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
    pub(super) fn auth(
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

    pub(super) fn spec(&mut self, route: &Route) -> Spec {
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
pub(super) fn fixed_specs(known: &Known) -> Vec<Spec> {
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
pub(super) fn boundary_specs(known: &Known) -> Vec<Spec> {
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

pub(super) async fn send(http: &reqwest::Client, base: &str, addr: &str, spec: &Spec) -> Outcome {
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
pub(super) async fn send_raw(addr: &str, spec: &Spec) -> Outcome {
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

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(out, ": {e}");
        source = e.source();
    }
    out
}

/// The first `len` bytes as text, as they are.
pub(super) fn raw_prefix(bytes: &[u8], len: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(len)]).into_owned()
}

/// The first `len` bytes as printable text, for reports.
pub(super) fn prefix(bytes: &[u8], len: usize) -> String {
    let cut = &bytes[..bytes.len().min(len)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > len {
        let _ = write!(text, "… ({} bytes)", bytes.len());
    }
    text.escape_debug().to_string()
}
