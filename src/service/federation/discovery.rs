//! Server discovery (spec: "Resolving server names"): where to send a request for a server
//! name, and under which name to check its certificate.
//!
//! In order: the operator's static table (`[federation.resolve]`), IP literals, explicit
//! ports, `/.well-known/matrix/server` delegation (cached), SRV records `_matrix-fed._tcp`
//! then `_matrix._tcp`, and port 8448. The answer is a URL whose host is the name the
//! certificate must carry (it is also the `Host` header and the TLS SNI); when SRV names
//! another host, the connection goes to that host's addresses through
//! [`Overrides`], shared with the HTTP client's resolver, so the egress policy still checks
//! every address.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::ServerName;

/// Well-known answers (and failures) are kept this long.
const WELL_KNOWN_TTL: Duration = Duration::from_secs(3600);
const WELL_KNOWN_FAILURE_TTL: Duration = Duration::from_secs(600);
/// The spec's default federation port.
const DEFAULT_PORT: u16 = 8448;
/// Largest `.well-known` document read.
const WELL_KNOWN_MAX_BYTES: usize = 64 * 1024;

/// Host names the HTTP client's resolver must send to given addresses (SRV targets).
#[derive(Default)]
pub struct Overrides(Mutex<HashMap<String, Vec<SocketAddr>>>);

impl Overrides {
    pub fn get(&self, host: &str) -> Option<Vec<SocketAddr>> {
        self.lock().get(host).cloned()
    }

    fn set(&self, host: &str, addrs: Vec<SocketAddr>) {
        self.lock().insert(host.to_owned(), addrs);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<SocketAddr>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Resolves server names to base URLs.
pub struct Discovery {
    /// `[federation.resolve]`: name → address, ahead of everything else.
    pinned: HashMap<String, SocketAddr>,
    overrides: Arc<Overrides>,
    well_known: Mutex<HashMap<String, (Instant, Option<String>)>>,
    dns: Option<hickory_resolver::TokioResolver>,
}

impl Discovery {
    pub fn new(pinned: HashMap<String, SocketAddr>, overrides: Arc<Overrides>) -> Self {
        let dns = hickory_resolver::Resolver::builder_tokio()
            .map(|builder| builder.build())
            .map_err(|e| tracing::warn!(error = %e, "no DNS configuration: SRV lookups are off"))
            .ok();
        Self {
            pinned,
            overrides,
            well_known: Mutex::default(),
            dns,
        }
    }

    /// The base URL (`https://host:port`) for requests to `server`. `http` is the client
    /// used to read `.well-known` (the federation client itself, with its policy).
    pub async fn base_url(&self, server: &ServerName, http: &reqwest::Client) -> String {
        if let Some(addr) = self.pinned.get(server.as_str()) {
            // The static table pins the host to an address; the certificate still names it.
            return format!("https://{}:{}", server.host(), addr.port());
        }
        if let Some(url) = literal_or_port(server.as_str()) {
            return url;
        }
        let host = server.host();
        if let Some(delegated) = self.delegation(host, http).await {
            if let Some(url) = literal_or_port(&delegated) {
                return url;
            }
            return self.srv_or_default(&delegated).await;
        }
        self.srv_or_default(host).await
    }

    /// `m.server` of `https://host/.well-known/matrix/server`, cached with its failures.
    async fn delegation(&self, host: &str, http: &reqwest::Client) -> Option<String> {
        if let Some((fetched, answer)) = self.well_known_lock().get(host).cloned() {
            let ttl = if answer.is_some() {
                WELL_KNOWN_TTL
            } else {
                WELL_KNOWN_FAILURE_TTL
            };
            if fetched.elapsed() < ttl {
                return answer;
            }
        }
        let answer = fetch_well_known(host, http).await;
        self.well_known_lock()
            .insert(host.to_owned(), (Instant::now(), answer.clone()));
        answer
    }

    /// SRV `_matrix-fed._tcp.host`, then `_matrix._tcp.host`; without either, port 8448.
    async fn srv_or_default(&self, host: &str) -> String {
        if let Some(dns) = &self.dns {
            for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
                let Ok(lookup) = dns.srv_lookup(format!("{service}.{host}.")).await else {
                    continue;
                };
                let Some(record) = lookup.iter().min_by_key(|srv| srv.priority()) else {
                    continue;
                };
                let target = record.target().to_utf8();
                let target = target.trim_end_matches('.');
                let port = record.port();
                if let Ok(addrs) = tokio::net::lookup_host((target, port)).await {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if !addrs.is_empty() {
                        // Connect to the target; present and check the server's own name.
                        self.overrides.set(host, addrs);
                        return format!("https://{host}:{port}");
                    }
                }
            }
        }
        format!("https://{host}:{DEFAULT_PORT}")
    }

    fn well_known_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<String>)>> {
        self.well_known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A URL for names that need no lookup: IP literals (port 8448 unless given) and names with
/// an explicit port.
fn literal_or_port(name: &str) -> Option<String> {
    if let Ok(addr) = name.parse::<SocketAddr>() {
        return Some(format!("https://{addr}"));
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(format!("https://{}", SocketAddr::new(ip, DEFAULT_PORT)));
    }
    let (host, port) = name.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(format!("https://{host}:{port}"))
}

async fn fetch_well_known(host: &str, http: &reqwest::Client) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WellKnown {
        #[serde(rename = "m.server")]
        server: String,
    }
    let response = http
        .get(format!("https://{host}/.well-known/matrix/server"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.bytes().await.ok()?;
    if body.len() > WELL_KNOWN_MAX_BYTES {
        return None;
    }
    let document: WellKnown = serde_json::from_slice(&body).ok()?;
    ServerName::parse(&document.server)
        .ok()
        .map(|name| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_ports_need_no_lookup() {
        assert_eq!(
            literal_or_port("1.2.3.4").as_deref(),
            Some("https://1.2.3.4:8448")
        );
        assert_eq!(
            literal_or_port("1.2.3.4:99").as_deref(),
            Some("https://1.2.3.4:99")
        );
        assert_eq!(
            literal_or_port("[::1]").as_deref(),
            Some("https://[::1]:8448")
        );
        assert_eq!(
            literal_or_port("example.org:443").as_deref(),
            Some("https://example.org:443")
        );
        assert_eq!(literal_or_port("example.org"), None);
    }
}
