//! The policy for outgoing server-server requests: one HTTP client that trusts the web roots
//! plus the operator's extra CAs (`federation.trusted_ca_files`), resolves names through the
//! static table (`[federation.resolve]`) before DNS, and refuses loopback, private, link-local
//! and reserved addresses after resolution unless `federation.allow_private_addresses` is set.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use ruma::{OwnedServerName, ServerName};

use crate::{
    config::FederationConfig, error::Error, listener, service::federation::discovery::Overrides,
};

/// Longest an outgoing federation request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Outgoing federation HTTP, with the policy built in.
pub struct Egress {
    client: reqwest::Client,
    resolve: Arc<BTreeMap<OwnedServerName, SocketAddr>>,
    allow_private: bool,
    /// Hosts sent to SRV targets by server discovery.
    pub overrides: Arc<Overrides>,
}

impl Egress {
    pub fn new(config: &FederationConfig) -> Result<Self, Error> {
        let resolve = Arc::new(
            config
                .resolve_table()
                .map_err(|e| Error::internal(e.to_string()))?,
        );
        let overrides = Arc::new(Overrides::default());
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver {
                resolve: resolve.clone(),
                overrides: Some(overrides.clone()),
                allow_private: config.allow_private_addresses,
            }));
        for file in &config.trusted_ca_files {
            for cert in
                listener::load_certificates(file).map_err(|e| Error::internal(e.to_string()))?
            {
                let cert = reqwest::Certificate::from_der(&cert).map_err(|e| {
                    Error::internal(format!(
                        "federation.trusted_ca_files {}: {e}",
                        file.display()
                    ))
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::internal(format!("outgoing HTTP client: {e}")))?;
        Ok(Self {
            client,
            resolve,
            allow_private: config.allow_private_addresses,
            overrides,
        })
    }

    /// The HTTP client every outgoing federation request uses.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The static table by server name.
    pub fn static_table(&self) -> std::collections::HashMap<String, SocketAddr> {
        self.resolve
            .iter()
            .map(|(name, addr)| (name.to_string(), *addr))
            .collect()
    }

    /// Where the static table sends `server`, if it names it.
    pub fn static_destination(&self, server: &ServerName) -> Option<SocketAddr> {
        self.resolve.get(server).copied()
    }

    /// Whether a request may go to `ip` (server names that are IP literals skip DNS, so
    /// callers check them here).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip)
    }
}

/// Resolves through the static table, then the system resolver, and drops every address the
/// policy forbids.
pub struct PolicyResolver {
    resolve: Arc<BTreeMap<OwnedServerName, SocketAddr>>,
    overrides: Option<Arc<Overrides>>,
    allow_private: bool,
}

impl PolicyResolver {
    /// The policy without a static table (push gateways are reached by their URL's host).
    pub fn new(allow_private: bool) -> Self {
        Self {
            resolve: Arc::default(),
            overrides: None,
            allow_private,
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let mut pinned: Vec<SocketAddr> = self
            .resolve
            .iter()
            .filter(|(server, _)| server.host() == host)
            .map(|(_, addr)| *addr)
            .collect();
        if pinned.is_empty()
            && let Some(srv_target) = self.overrides.as_ref().and_then(|o| o.get(&host))
        {
            pinned = srv_target;
        }
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = if pinned.is_empty() {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                pinned
            };
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves to no address this server may contact").into(),
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `ip` is a globally routable unicast address: not loopback, private, link-local,
/// shared (CGNAT), documentation, multicast, broadcast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || first == 0x2001 && v6.segments()[1] == 0x0db8
                    || first == 0x0064 && v6.segments()[1] == 0xff9b)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip} is not public");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_public(ip), "{ip} is public");
        }
    }

    #[test]
    fn the_switch_allows_private_addresses() {
        let mut config = FederationConfig::default();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!Egress::new(&config).unwrap().allows(loopback));
        config.allow_private_addresses = true;
        config
            .resolve
            .insert("hs1".to_owned(), "127.0.0.2:8448".to_owned());
        let egress = Egress::new(&config).unwrap();
        assert!(egress.allows(loopback));
        let hs1 = ServerName::parse("hs1").unwrap();
        assert_eq!(
            egress.static_destination(&hs1),
            Some("127.0.0.2:8448".parse().unwrap())
        );
    }
}
