//! After the run: deep nesting that survives parsing, and reading everything back.

use super::*;

// ---------------------------------------------------------------------------------------------
// Deep nesting that survives parsing
// ---------------------------------------------------------------------------------------------

/// One request outside the random run; `None` token means no `Authorization` header.
pub(super) async fn probe(
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

pub(super) fn probe_failure(context: &str, spec: &Spec, outcome: &Outcome) -> Option<String> {
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
pub(super) async fn read_everything(
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
pub(super) async fn deep_probes(
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
