//! The `keys-query` and `keys-claim` scenarios: end-to-end encryption's two hot lookups.
//! - `keys-query`: U users, each with a device that uploaded signed device keys and a
//!   cross-signing master key; one client asks for all of them at once, S times.
//! - `keys-claim`: D devices with one-time keys; one client claims one key of every device
//!   at once, S times (each claim must hand out a different key: checked).
//!
//! Keys are real ed25519 signatures over canonical JSON, as clients send them.

use std::{collections::HashSet, time::Instant};

use ruma::{
    CanonicalJsonObject,
    serde::{Base64, base64::Standard},
    signatures::{Ed25519KeyPair, sign_json},
};
use serde_json::{Value, json};

use super::{Cli, Failure, ProcWindow, call, latency_summary, settle};

/// A registered user's session: its ids and token.
struct Session {
    user_id: String,
    device_id: String,
    token: String,
}

async fn register(http: &reqwest::Client, url: &str, name: &str) -> Result<Session, Failure> {
    let body = json!({ "username": name, "password": "bench-password-1", "auth": { "type": "m.login.dummy" } });
    let value = call(
        http,
        reqwest::Method::POST,
        &format!("{url}/_matrix/client/v3/register"),
        None,
        Some(&body),
    )
    .await?;
    let text = |key: &str| {
        value[key]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("register: no {key}"))
    };
    Ok(Session {
        user_id: text("user_id")?,
        device_id: text("device_id")?,
        token: text("access_token")?,
    })
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: &Session,
    path: &str,
    body: &Value,
) -> Result<Value, Failure> {
    call(
        http,
        reqwest::Method::POST,
        &format!("{url}{path}"),
        Some(&session.token),
        Some(body),
    )
    .await
}

/// An ed25519 key and what signing with it needs.
struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    fn new(version: &str) -> Self {
        let der = Ed25519KeyPair::generate();
        Signer {
            pair: Ed25519KeyPair::from_der(&der, version.to_owned()).expect("key"),
        }
    }

    /// A cross-signing key: clients name it by its public key (`ed25519:<public key>`), and
    /// the signatures it makes must carry that name.
    fn named_by_public_key() -> Self {
        let der = Ed25519KeyPair::generate();
        let unnamed = Ed25519KeyPair::from_der(&der, String::new()).expect("key");
        let public = Base64::<Standard>::new(unnamed.public_key().to_vec()).encode();
        Signer {
            pair: Ed25519KeyPair::from_der(&der, public).expect("key"),
        }
    }

    fn public(&self) -> String {
        Base64::<Standard>::new(self.pair.public_key().to_vec()).encode()
    }

    fn sign(&self, entity: &str, object: Value) -> Value {
        let mut object: CanonicalJsonObject =
            serde_json::from_value(object).expect("canonical object");
        sign_json(entity, &self.pair, &mut object).expect("signing");
        serde_json::to_value(object).expect("json")
    }
}

/// Device keys of the session's device, self-signed.
fn device_keys(session: &Session, key: &Signer) -> Value {
    let device = &session.device_id;
    key.sign(
        &session.user_id,
        json!({
            "user_id": session.user_id,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{device}"): key.public(),
                format!("ed25519:{device}"): key.public(),
            },
        }),
    )
}

/// `count` signed one-time keys of the device.
fn one_time_keys(session: &Session, key: &Signer, count: usize) -> Value {
    let mut keys = serde_json::Map::new();
    for n in 0..count {
        keys.insert(
            format!("signed_curve25519:AAAA{n:04}"),
            key.sign(
                &session.user_id,
                json!({ "key": format!("{}{n:04}", key.public()) }),
            ),
        );
    }
    Value::Object(keys)
}

/// Users and their devices for a scenario, registered and with keys uploaded.
async fn prepare(
    cli: &Cli,
    http: &reqwest::Client,
    tag: &str,
    users: usize,
    one_time: usize,
) -> Result<Vec<Session>, Failure> {
    let url = cli.url.trim_end_matches('/');
    let mut sessions = Vec::with_capacity(users);
    for i in 0..users {
        let session = register(http, url, &format!("{}{tag}{i}", cli.prefix)).await?;
        let key = Signer::new(&session.device_id);
        let mut body = json!({ "device_keys": device_keys(&session, &key) });
        if one_time > 0 {
            body["one_time_keys"] = one_time_keys(&session, &key, one_time);
        }
        post(http, url, &session, "/_matrix/client/v3/keys/upload", &body).await?;
        if one_time == 0 {
            let master = Signer::named_by_public_key();
            let master_key = json!({
                "user_id": session.user_id,
                "usage": ["master"],
                "keys": { format!("ed25519:{}", master.public()): master.public() },
            });
            let self_signing = Signer::named_by_public_key();
            let self_key = master.sign(
                &session.user_id,
                json!({
                    "user_id": session.user_id,
                    "usage": ["self_signing"],
                    "keys": { format!("ed25519:{}", self_signing.public()): self_signing.public() },
                }),
            );
            let signing = json!({
                "master_key": master_key,
                "self_signing_key": self_key,
                "auth": { "type": "m.login.password", "identifier": { "type": "m.id.user", "user": session.user_id }, "password": "bench-password-1" },
            });
            post(
                http,
                url,
                &session,
                "/_matrix/client/v3/keys/device_signing/upload",
                &signing,
            )
            .await?;
        }
        sessions.push(session);
    }
    Ok(sessions)
}

pub async fn run_query(
    cli: &Cli,
    http: &reqwest::Client,
    users: usize,
    samples: usize,
) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let sessions = prepare(cli, http, "kq", users, 0).await?;
    let asker = register(http, url, &format!("{}kqasker", cli.prefix)).await?;
    let wanted: serde_json::Map<String, Value> = sessions
        .iter()
        .map(|s| (s.user_id.clone(), json!([])))
        .collect();
    let body = json!({ "device_keys": wanted, "timeout": 10_000 });
    let mut window = ProcWindow::default();
    settle(cli.pid, &cli.also_idle).await;
    window.start(cli.pid);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let answer = post(http, url, &asker, "/_matrix/client/v3/keys/query", &body).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        for session in &sessions {
            let device = &answer["device_keys"][&session.user_id][&session.device_id];
            if device["keys"]
                .as_object()
                .is_none_or(|keys| keys.len() != 2)
            {
                return Err(format!(
                    "keys/query: {}'s device keys missing",
                    session.user_id
                ));
            }
            if !answer["master_keys"][&session.user_id].is_object() {
                return Err(format!(
                    "keys/query: {}'s master key missing",
                    session.user_id
                ));
            }
        }
    }
    window.stop(cli.pid);
    Ok((
        samples,
        json!({ "users": users, "latency": latency_summary(latencies) }),
        window,
    ))
}

pub async fn run_claim(
    cli: &Cli,
    http: &reqwest::Client,
    devices: usize,
    samples: usize,
) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let sessions = prepare(cli, http, "kc", devices, samples).await?;
    let claimer = register(http, url, &format!("{}kcclaimer", cli.prefix)).await?;
    let mut wanted = serde_json::Map::new();
    for session in &sessions {
        wanted.insert(
            session.user_id.clone(),
            json!({ session.device_id.clone(): "signed_curve25519" }),
        );
    }
    let body = json!({ "one_time_keys": wanted, "timeout": 10_000 });
    let mut window = ProcWindow::default();
    let mut handed_out = HashSet::new();
    settle(cli.pid, &cli.also_idle).await;
    window.start(cli.pid);
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let answer = post(http, url, &claimer, "/_matrix/client/v3/keys/claim", &body).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        for session in &sessions {
            let keys = answer["one_time_keys"][&session.user_id][&session.device_id]
                .as_object()
                .filter(|keys| keys.len() == 1)
                .ok_or(format!("keys/claim: no key for {}", session.user_id))?;
            let (id, _) = keys.iter().next().ok_or("keys/claim: empty")?;
            if !handed_out.insert(format!("{}/{id}", session.user_id)) {
                return Err(format!("keys/claim handed out {id} twice"));
            }
        }
    }
    window.stop(cli.pid);
    Ok((
        samples,
        json!({ "devices": devices, "latency": latency_summary(latencies) }),
        window,
    ))
}
