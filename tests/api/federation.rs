//! The federation listener: HTTPS with a certificate from a test CA (or plain HTTP without
//! one), serving the federation routes and 404 M_UNRECOGNIZED for the rest.

use std::{net::SocketAddr, path::Path};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;

use crate::common::TestServer;

/// A CA and a certificate for `hs1` signed by it, written as PEM files into `dir`.
/// Returns the CA certificate's PEM.
fn mint_certificates(dir: &Path) -> String {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hearth test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["hs1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("hs1.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("hs1.key"), key.serialize_pem()).unwrap();
    ca.pem()
}

async fn start_with_tls() -> (TestServer, String, SocketAddr) {
    let certs = tempfile::tempdir().unwrap();
    let ca_pem = mint_certificates(certs.path());
    let server = TestServer::start_with(|config| {
        config.federation.enabled = true;
        config.federation.port = 0;
        config.federation.tls_certificate = Some(certs.path().join("hs1.crt"));
        config.federation.tls_private_key = Some(certs.path().join("hs1.key"));
    })
    .await;
    let addr = server.federation_addr().expect("federation listener");
    (server, ca_pem, addr)
}

async fn assert_unrecognized(response: reqwest::Response) {
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNRECOGNIZED", "{body}");
}

#[tokio::test]
async fn tls_listener_serves_federation_over_https() {
    let (_server, ca_pem, addr) = start_with_tls().await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("hs1", addr)
        .build()
        .unwrap();
    let base = format!("https://hs1:{}", addr.port());
    let version = client
        .get(format!("{base}/_matrix/federation/v1/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200);
    let keys = client
        .get(format!("{base}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200);
    // Without an X-Matrix signature, a transaction is refused.
    let send = client
        .put(format!("{base}/_matrix/federation/v1/send/txn1"))
        .json(&serde_json::json!({"pdus": [], "edus": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 401);
    let body: Value = send.json().await.unwrap();
    assert_eq!(body["errcode"], "M_UNAUTHORIZED", "{body}");
    // What is not served yet answers the spec's unrecognized error.
    let profile = client
        .get(format!(
            "{base}/_matrix/federation/v1/query/profile?user_id=@a:hs1"
        ))
        .send()
        .await
        .unwrap();
    assert_unrecognized(profile).await;
}

#[tokio::test]
async fn tls_listener_presents_the_minted_certificate() {
    let (_server, _ca_pem, addr) = start_with_tls().await;
    // A client that does not trust the test CA refuses the handshake.
    let untrusting = reqwest::Client::builder()
        .resolve("hs1", addr)
        .build()
        .unwrap();
    let err = untrusting
        .get(format!(
            "https://hs1:{}/_matrix/federation/v1/version",
            addr.port()
        ))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/_matrix/federation/v1/version"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 404);
}

#[tokio::test]
async fn without_certificates_the_listener_speaks_plain_http() {
    let server = TestServer::start_with(|config| {
        config.federation.enabled = true;
        config.federation.port = 0;
    })
    .await;
    let addr = server.federation_addr().expect("federation listener");
    let response = reqwest::get(format!("http://{addr}/_matrix/federation/v1/query/profile"))
        .await
        .unwrap();
    assert_unrecognized(response).await;
    // The client API still serves its own routes.
    let versions = server.get("/_matrix/client/versions", None).await;
    assert_eq!(versions.0, 200);
}

#[tokio::test]
async fn federation_listener_is_off_by_default() {
    let server = TestServer::start().await;
    assert!(server.federation_addr().is_none());
}
