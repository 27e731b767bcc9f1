//! Two Hearths federating on loopback, with TLS from a test CA: server keys, signed
//! requests, joins through another server, and messages both ways.

use std::{net::SocketAddr, path::Path, time::Duration};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room, send_text, timeline_bodies};

/// A CA, and a certificate signed by it for each name; returns the CA's PEM file.
fn mint(dir: &Path, names: &[&str]) -> std::path::PathBuf {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hearth federation test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    for name in names {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![(*name).to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    ca_file
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two servers, `hs1` and `hs2`, that trust the same CA and find each other through their
/// static resolution tables.
pub struct Pair {
    pub hs1: TestServer,
    pub hs2: TestServer,
    _certs: tempfile::TempDir,
}

pub async fn pair() -> Pair {
    let certs = tempfile::tempdir().unwrap();
    let ca = mint(certs.path(), &["hs1", "hs2"]);
    let ports = [free_port(), free_port()];
    let start = |name: &'static str, own: u16, peer: (&'static str, u16)| {
        let certs = certs.path().to_owned();
        let ca = ca.clone();
        TestServer::start_with(move |config| {
            config.server_name = name.to_owned();
            config.federation.enabled = true;
            config.federation.port = own;
            config.federation.tls_certificate = Some(certs.join(format!("{name}.crt")));
            config.federation.tls_private_key = Some(certs.join(format!("{name}.key")));
            config.federation.trusted_ca_files = vec![ca];
            config.federation.allow_private_addresses = true;
            config
                .federation
                .resolve
                .insert(peer.0.to_owned(), format!("127.0.0.1:{}", peer.1));
        })
    };
    let hs1 = start("hs1", ports[0], ("hs2", ports[1])).await;
    let hs2 = start("hs2", ports[1], ("hs1", ports[0])).await;
    Pair {
        hs1,
        hs2,
        _certs: certs,
    }
}

/// Syncs `user` until `found` accepts the response (bounded: 20 s).
async fn sync_until(
    server: &TestServer,
    user: &TestUser,
    what: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let mut since: Option<String> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let path = match &since {
            Some(since) => format!("/_matrix/client/v3/sync?timeout=1000&since={since}"),
            None => "/_matrix/client/v3/sync?timeout=0".to_owned(),
        };
        let (status, body) = server.get(&path, Some(&user.token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if found(&body) {
            return body;
        }
        since = body["next_batch"].as_str().map(str::to_owned);
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen in 20 s of syncing"
        );
    }
}

/// Bob of hs2 joins `room` of hs1 through hs1; returns the answer's body.
async fn join_through_hs1(pair: &Pair, bob: &TestUser, room: &str) -> Value {
    let (status, body) = pair
        .hs2
        .post(
            &format!("/_matrix/client/v3/join/{room}?server_name=hs1"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "remote join: {body}");
    body
}

async fn members(server: &TestServer, user: &TestUser, room: &str) -> Vec<String> {
    let (status, body) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut members: Vec<String> = body["joined"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    members.sort();
    members
}

#[tokio::test]
async fn a_user_joins_a_room_on_another_server_and_both_sides_talk() {
    let pair = pair().await;
    let alice = pair.hs1.register("alice", "password-alice").await;
    let bob = pair.hs2.register("bob", "password-bob").await;
    let room = create_room(
        &pair.hs1,
        &alice,
        json!({ "preset": "public_chat", "name": "Across" }),
    )
    .await;
    send_text(&pair.hs1, &alice, &room, "t1", "before bob").await;

    let body = join_through_hs1(&pair, &bob, &room).await;
    assert_eq!(body["room_id"], room);

    // Bob's server holds the room's state: its name and both members.
    let (status, name) = pair
        .hs2
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{name}");
    assert_eq!(name["name"], "Across");
    let both = vec![alice.user_id.clone(), bob.user_id.clone()];
    assert_eq!(members(&pair.hs2, &bob, &room).await, both);
    // And Alice's server accepted the join.
    assert_eq!(members(&pair.hs1, &alice, &room).await, both);

    // Alice → Bob through hs1's outgoing queue and hs2's /send.
    send_text(&pair.hs1, &alice, &room, "t2", "hello bob").await;
    sync_until(&pair.hs2, &bob, "alice's message on hs2", |sync| {
        timeline_bodies(sync, &room).contains(&"hello bob".to_owned())
    })
    .await;
    // Bob → Alice.
    send_text(&pair.hs2, &bob, &room, "t1", "hello alice").await;
    let seen = sync_until(&pair.hs1, &alice, "bob's message on hs1", |sync| {
        timeline_bodies(sync, &room).contains(&"hello alice".to_owned())
    })
    .await;
    let event = seen["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["body"] == "hello alice")
        .unwrap()
        .clone();
    assert_eq!(event["sender"], bob.user_id);

    // State changes cross too: Bob's server sees Alice's new topic.
    let (status, _) = pair
        .hs1
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"),
            Some(&alice.token),
            json!({ "topic": "federated" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sync_until(&pair.hs2, &bob, "the topic on hs2", |sync| {
        sync["rooms"]["join"][&room]["timeline"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["content"]["topic"] == "federated"))
    })
    .await;
    let (_, topic) = pair
        .hs2
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(topic["topic"], "federated");
}

#[tokio::test]
async fn server_keys_are_published_signed_and_requests_must_be_signed() {
    let pair = pair().await;
    let addr: SocketAddr = pair.hs1.federation_addr().unwrap();
    let ca = std::fs::read(pair._certs.path().join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("hs1", addr)
        .build()
        .unwrap();
    let base = format!("https://hs1:{}", addr.port());
    let keys: Value = client
        .get(format!("{base}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["server_name"], "hs1");
    let key_id = keys["verify_keys"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(keys["signatures"]["hs1"][&key_id].is_string(), "{keys}");
    assert!(keys["valid_until_ts"].as_u64().unwrap() > 0);
    // The document verifies against the key it publishes (checked with ruma).
    let object: ruma::CanonicalJsonObject = serde_json::from_value(keys.clone()).unwrap();
    hearth::service::federation::keys::check_key_document(
        &ruma::ServerName::parse("hs1").unwrap(),
        &object,
    )
    .expect("self-signed key document");

    let version: Value = client
        .get(format!("{base}/_matrix/federation/v1/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["server"]["name"], "Hearth");

    // Unsigned, forged and misdirected requests are refused with 401 M_UNAUTHORIZED.
    let unsigned = client
        .put(format!("{base}/_matrix/federation/v1/send/txn1"))
        .json(&json!({ "origin": "hs2", "origin_server_ts": 1, "pdus": [] }))
        .send()
        .await
        .unwrap();
    let unsigned = (unsigned.status(), unsigned.json::<Value>().await.unwrap());
    assert_error(&unsigned, StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    let forged = client
        .put(format!("{base}/_matrix/federation/v1/send/txn1"))
        .header(
            "Authorization",
            format!(
                "X-Matrix origin=\"hs2\",destination=\"hs1\",key=\"ed25519:nope\",sig=\"{}\"",
                "A".repeat(86)
            ),
        )
        .json(&json!({ "origin": "hs2", "origin_server_ts": 1, "pdus": [] }))
        .send()
        .await
        .unwrap();
    let forged = (forged.status(), forged.json::<Value>().await.unwrap());
    assert_error(&forged, StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    // Unknown paths stay unrecognized.
    let unknown = client
        .get(format!("{base}/_matrix/federation/v1/nonexistent"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// A message event of `sender` in `room` on top of hs1's current extremities, signed by
/// hs2's key with `content`; `edit` may change the signed object afterwards (a forger's
/// tampering).
fn signed_by_hs2(
    pair: &Pair,
    room: &str,
    sender: &str,
    kind: &str,
    state_key: Option<&str>,
    content: Value,
) -> ruma::CanonicalJsonObject {
    let hs1 = pair.hs1.services();
    let room_id = ruma::RoomId::parse(room).unwrap();
    let (short_room, record) = hs1.rooms.registry.room(&room_id).unwrap().unwrap();
    let rules = record.version.rules().unwrap();
    let sender_id = ruma::UserId::parse(sender).unwrap();
    let raw_content = serde_json::value::to_raw_value(&content).unwrap();
    let auth_events = hs1
        .rooms
        .auth_events_for(
            short_room,
            &rules,
            &kind.into(),
            &sender_id,
            state_key,
            &raw_content,
        )
        .unwrap();
    let mut event = json!({
        "room_id": room,
        "sender": sender,
        "origin": "hs2",
        "type": kind,
        "content": content,
        "prev_events": record.extremities,
        "auth_events": auth_events,
        "depth": record.depth + 1,
    });
    if let Some(state_key) = state_key {
        event["state_key"] = json!(state_key);
    }
    let mut object: ruma::CanonicalJsonObject = serde_json::from_value(event).unwrap();
    pair.hs2
        .services()
        .rooms
        .sign_template(&mut object, &rules)
        .unwrap();
    object
}

/// Sends PDUs from hs2 to hs1 in a real, signed transaction; returns hs1's per-PDU answer.
async fn send_from_hs2(
    pair: &Pair,
    txn: &str,
    pdus: Vec<ruma::CanonicalJsonObject>,
) -> std::collections::BTreeMap<ruma::OwnedEventId, Result<(), String>> {
    use ruma::api::federation::transactions::send_transaction_message;
    let mut request = send_transaction_message::v1::Request::new(
        txn.into(),
        ruma::OwnedServerName::try_from("hs2").unwrap(),
        ruma::MilliSecondsSinceUnixEpoch::now(),
    );
    request.pdus = pdus
        .iter()
        .map(|pdu| serde_json::value::to_raw_value(pdu).unwrap())
        .collect();
    let hs1 = ruma::ServerName::parse("hs1").unwrap();
    pair.hs2
        .services()
        .federation
        .client
        .send(&hs1, request)
        .await
        .expect("hs1 answers the transaction")
        .pdus
}

#[tokio::test]
async fn forged_tampered_and_unauthorized_events_never_change_the_room() {
    let pair = pair().await;
    let alice = pair.hs1.register("alice", "password-alice").await;
    let bob = pair.hs2.register("bob", "password-bob").await;
    let room = create_room(&pair.hs1, &alice, json!({ "preset": "public_chat" })).await;
    join_through_hs1(&pair, &bob, &room).await;

    // A user of another server, signed only by hs2: the sender's server did not sign it.
    let forged_sender = signed_by_hs2(
        &pair,
        &room,
        "@mallory:hs3",
        "m.room.message",
        None,
        json!({ "msgtype": "m.text", "body": "forged" }),
    );
    let answer = send_from_hs2(&pair, "forged", vec![forged_sender]).await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer.values().all(Result::is_err), "{answer:?}");

    // Bob may not change the power levels: refused by the authorization rules.
    let power_grab = signed_by_hs2(
        &pair,
        &room,
        &bob.user_id,
        "m.room.power_levels",
        Some(""),
        json!({ "users": { bob.user_id.clone(): 100 } }),
    );
    let answer = send_from_hs2(&pair, "power", vec![power_grab]).await;
    assert!(answer.values().all(Result::is_err), "{answer:?}");
    let (_, levels) = pair
        .hs1
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels"),
            Some(&alice.token),
        )
        .await;
    assert!(levels["users"].get(&bob.user_id).is_none(), "{levels}");

    // A signature that does not match the event: refused.
    let mut bad_signature = signed_by_hs2(
        &pair,
        &room,
        &bob.user_id,
        "m.room.message",
        None,
        json!({ "msgtype": "m.text", "body": "legit" }),
    );
    bad_signature.insert(
        "origin_server_ts".into(),
        ruma::CanonicalJsonValue::Integer(1u32.into()),
    );
    let answer = send_from_hs2(&pair, "badsig", vec![bad_signature]).await;
    assert!(answer.values().all(Result::is_err), "{answer:?}");

    // Content changed after signing: the signature still covers the redacted form, the
    // content hash does not match, and the event is kept redacted (the spec's rule).
    let mut tampered = signed_by_hs2(
        &pair,
        &room,
        &bob.user_id,
        "m.room.message",
        None,
        json!({ "msgtype": "m.text", "body": "original" }),
    );
    tampered.insert(
        "content".into(),
        ruma::canonical_json::to_canonical_value(
            json!({ "msgtype": "m.text", "body": "tampered" }),
        )
        .unwrap(),
    );
    let answer = send_from_hs2(&pair, "tampered", vec![tampered]).await;
    let (event_id, result) = answer.iter().next().expect("one result");
    assert!(result.is_ok(), "{answer:?}");
    let (status, stored) = pair
        .hs1
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{event_id}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["content"], json!({}), "kept redacted: {stored}");

    // A repeated transaction id gets the first answer and changes nothing.
    let again = send_from_hs2(&pair, "tampered", vec![]).await;
    assert_eq!(again.len(), 1, "the first answer: {again:?}");
}
