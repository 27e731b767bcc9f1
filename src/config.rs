//! Typed configuration: defaults, the TOML file, `HEARTH_*` environment overrides and validation.
//!
//! Precedence, lowest first: built-in defaults, the config file, environment variables.
//! A top-level key `foo` is overridden by `HEARTH_FOO`; a key `bar` in section `[sec]` by
//! `HEARTH_SEC__BAR` (two underscores separate the section).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use ruma::{OwnedServerName, ServerName};
use serde::{Deserialize, Serialize};

mod media;
pub use media::MediaConfig;

/// Everything an operator can configure. `example.toml` documents each key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server name that appears in user ids (`@alice:server_name`). Fixed once users exist.
    pub server_name: String,
    /// Directory of the embedded RocksDB database.
    pub database_path: PathBuf,
    /// Address the client API listens on.
    pub address: IpAddr,
    /// Port the client API listens on (0 picks a free port).
    pub port: u16,
    /// Whether anyone may register an account through the client API.
    pub allow_registration: bool,
    /// When set (and registration is allowed), registration needs this token
    /// (`m.login.registration_token`).
    pub registration_token: Option<String>,
    /// When set, enables `/_synapse/admin/v1/register` (shared-secret registration).
    pub registration_shared_secret: Option<String>,
    /// Log filter: a level (`info`) or a tracing directive (`hearth=debug,info`).
    pub log_level: String,
    /// Largest accepted request body, in bytes.
    pub max_request_size: usize,
    /// Lifetime of access tokens issued together with a refresh token, in seconds (default
    /// 300, Synapse's `refreshable_access_token_lifetime`). Only clients that ask for a
    /// refresh token get expiring tokens. 0 disables refresh tokens: access tokens then never
    /// expire.
    pub access_token_lifetime_secs: u64,
    /// Room version of new rooms when the client does not ask for one.
    pub default_room_version: String,
    pub storage: StorageConfig,
    pub password_hash: PasswordHashConfig,
    pub rate_limits: RateLimitConfig,
    pub well_known: WellKnownConfig,
    pub presence: PresenceConfig,
    pub server_notices: ServerNoticesConfig,
    pub federation: FederationConfig,
    pub push: PushConfig,
    pub media: MediaConfig,
}

/// Delivery of push notifications to push gateways (`POST …/_matrix/push/v1/notify`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Allow pushers whose gateway is on a loopback, private, link-local or other non-public
    /// address (off by default: a user could otherwise make the server probe its own network).
    pub allow_private_addresses: bool,
    /// Longest one request to a push gateway may take, connection included, in seconds.
    pub request_timeout_secs: u64,
    /// How long an entry stays in a user's notification list (`GET /notifications`), in days;
    /// 0 keeps them forever. Unread counts do not depend on it.
    pub notification_retention_days: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            request_timeout_secs: 10,
            notification_retention_days: 30,
        }
    }
}

/// The server-server (federation) side: its listener and the policy for outgoing requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Serve the federation listener.
    pub enabled: bool,
    /// Address the federation listener binds.
    pub address: IpAddr,
    /// Port of the federation listener (8448 is the spec's default; 0 picks a free port).
    pub port: u16,
    /// PEM certificate chain for the federation listener. With `tls_private_key`, the listener
    /// speaks HTTPS; without both, plain HTTP (for a TLS-terminating reverse proxy in front).
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls_certificate`.
    pub tls_private_key: Option<PathBuf>,
    /// PEM files of certificate authorities trusted for outgoing federation requests, in
    /// addition to the built-in web roots.
    pub trusted_ca_files: Vec<PathBuf>,
    /// Allow outgoing requests to loopback, private, link-local and other non-public
    /// addresses. Off in production; test deployments on loopback need it.
    pub allow_private_addresses: bool,
    /// Static server-name resolution that takes precedence over `.well-known` and DNS:
    /// `"hs1" = "127.0.0.2:8448"`.
    pub resolve: BTreeMap<String, String>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8448,
            tls_certificate: None,
            tls_private_key: None,
            trusted_ca_files: Vec::new(),
            allow_private_addresses: false,
            resolve: BTreeMap::new(),
        }
    }
}

impl FederationConfig {
    /// The static resolution table, parsed (validated in [`Config::validate`]).
    pub fn resolve_table(&self) -> Result<BTreeMap<OwnedServerName, SocketAddr>, ConfigError> {
        self.resolve
            .iter()
            .map(|(name, addr)| {
                let server = ServerName::parse(name).map_err(|e| {
                    ConfigError(format!(
                        "federation.resolve: {name:?} is not a valid server name: {e}"
                    ))
                })?;
                let addr = addr.parse::<SocketAddr>().map_err(|e| {
                    ConfigError(format!(
                        "federation.resolve: {name:?} = {addr:?} is not an IP:port address: {e}"
                    ))
                })?;
                Ok((server, addr))
            })
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_certificate.is_some() != self.tls_private_key.is_some() {
            return Err(ConfigError(
                "federation: tls_certificate and tls_private_key must be set together".into(),
            ));
        }
        for file in self
            .tls_certificate
            .iter()
            .chain(&self.tls_private_key)
            .chain(&self.trusted_ca_files)
        {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "federation: {} is not a readable file",
                    file.display()
                )));
            }
        }
        self.resolve_table().map(|_| ())
    }
}

/// Presence settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Users with no activity (requests, syncs) for this long are set offline.
    pub idle_timeout_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 300,
        }
    }
}

/// Server notices: messages from the server's own user to one user, in a room of their own
/// (`/_synapse/admin/v1/send_server_notice`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerNoticesConfig {
    /// Localpart of the user that sends notices. Localparts beginning with `_` cannot be
    /// registered, so the default cannot be taken by a user.
    pub sender_localpart: String,
    /// The sender's display name.
    pub sender_display_name: String,
    /// The name of each user's notices room.
    pub room_name: String,
}

impl Default for ServerNoticesConfig {
    fn default() -> Self {
        Self {
            sender_localpart: "_server".into(),
            sender_display_name: "Server Notices".into(),
            room_name: "Server Notices".into(),
        }
    }
}

/// RocksDB settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// fsync the write-ahead log before a write is acknowledged. Without it a process crash
    /// still loses nothing, but a power loss may lose the last writes.
    pub sync_writes: bool,
    /// Size of the shared block cache, in MiB.
    pub cache_size_mib: usize,
    /// Memory for not-yet-flushed writes (all tables together), in MiB.
    pub write_buffer_mib: usize,
    /// Most events kept parsed and pre-rendered in memory (about 1–2 KiB each).
    pub event_cache_entries: usize,
}

/// argon2id cost parameters for password hashes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashConfig {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// Request rate limits for login and registration, per client IP.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Sustained login attempts per second per IP.
    pub login_per_second: f64,
    /// Login attempts allowed in a burst.
    pub login_burst: u32,
    /// Sustained registration attempts per second per IP.
    pub registration_per_second: f64,
    /// Registration attempts allowed in a burst.
    pub registration_burst: u32,
}

/// What the `/.well-known/matrix/*` documents say. Each is served only when configured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WellKnownConfig {
    /// Base URL clients should use, e.g. `https://matrix.example.org`.
    pub client: Option<String>,
    /// Delegated federation server, e.g. `matrix.example.org:443`.
    pub server: Option<String>,
    /// Support page URL for `/.well-known/matrix/support`.
    pub support_page: Option<String>,
    /// Contacts for `/.well-known/matrix/support`.
    pub support_contacts: Vec<SupportContact>,
}

/// One entry of `/.well-known/matrix/support`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportContact {
    /// `m.role.admin` or `m.role.security`.
    pub role: String,
    pub matrix_id: Option<String>,
    pub email_address: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".to_owned(),
            database_path: PathBuf::from("./data"),
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8008,
            allow_registration: false,
            registration_token: None,
            registration_shared_secret: None,
            log_level: "info".to_owned(),
            max_request_size: 1024 * 1024,
            access_token_lifetime_secs: 300,
            default_room_version: "10".to_owned(),
            storage: StorageConfig::default(),
            password_hash: PasswordHashConfig::default(),
            rate_limits: RateLimitConfig::default(),
            well_known: WellKnownConfig::default(),
            presence: PresenceConfig::default(),
            server_notices: ServerNoticesConfig::default(),
            federation: FederationConfig::default(),
            push: PushConfig::default(),
            media: MediaConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            sync_writes: true,
            cache_size_mib: 32,
            write_buffer_mib: 16,
            event_cache_entries: 8192,
        }
    }
}

impl Default for PasswordHashConfig {
    /// OWASP's recommended argon2id setting (19 MiB, 2 passes, 1 lane): ~20 ms per hash here.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            login_per_second: 0.2,
            login_burst: 10,
            registration_per_second: 0.1,
            registration_burst: 5,
        }
    }
}

/// A configuration that could not be loaded, with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

const ENV_PREFIX: &str = "HEARTH_";

impl Config {
    /// Loads defaults, then `file` (if any), then `HEARTH_*` variables from the process
    /// environment, and validates the result.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Like [`Config::load`] with an explicit environment (used by tests).
    pub fn load_with_env(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError(format!("internal: defaults do not serialize: {e}")))?;
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                apply_env_override(&mut table, &defaults, key, &value)?;
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError(format!("invalid configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ServerName::parse(&self.server_name).map_err(|e| {
            ConfigError(format!(
                "server_name {:?} is not a valid server name: {e}",
                self.server_name
            ))
        })?;
        if ![
            "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
        ]
        .contains(&self.default_room_version.as_str())
        {
            return Err(ConfigError(format!(
                "default_room_version {:?} is not one of the supported versions 1–12",
                self.default_room_version
            )));
        }
        if self.max_request_size < 1024 {
            return Err(ConfigError(
                "max_request_size must be at least 1024 bytes".into(),
            ));
        }
        let hash = &self.password_hash;
        if hash.memory_kib < 8 * hash.parallelism.max(1)
            || hash.iterations == 0
            || hash.parallelism == 0
        {
            return Err(ConfigError(
                "password_hash: memory_kib must be >= 8 × parallelism, iterations and parallelism >= 1"
                    .into(),
            ));
        }
        for secret in [&self.registration_token, &self.registration_shared_secret] {
            if secret.as_deref() == Some("") {
                return Err(ConfigError(
                    "registration_token / registration_shared_secret must not be empty when set"
                        .into(),
                ));
            }
        }
        if let Some(c) = self
            .well_known
            .support_contacts
            .iter()
            .find(|c| c.matrix_id.is_none() && c.email_address.is_none())
        {
            return Err(ConfigError(format!(
                "well_known.support_contacts: contact with role {} needs matrix_id or email_address",
                c.role
            )));
        }
        self.federation.validate()?;
        self.media.validate()
    }

    /// The parsed server name (validated in [`Config::validate`]).
    #[allow(clippy::expect_used, reason = "validated when the config is loaded")]
    pub fn server_name(&self) -> OwnedServerName {
        ServerName::parse(&self.server_name).expect("server_name is validated at load")
    }

    /// Warnings about settings that are legal but probably not what the operator meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.registration_token.is_some() && !self.allow_registration {
            warnings.push(
                "registration_token is set but allow_registration is false: nobody can register"
                    .to_owned(),
            );
        }
        if self.allow_registration && self.registration_token.is_none() {
            warnings.push(
                "open registration: anyone who reaches this server can create an account"
                    .to_owned(),
            );
        }
        if self.federation.allow_private_addresses {
            warnings.push(
                "federation.allow_private_addresses = true: outgoing requests may reach loopback and private networks"
                    .to_owned(),
            );
        }
        if self.federation.enabled && self.federation.tls_certificate.is_none() {
            warnings.push(
                "federation listener without TLS: put a TLS-terminating proxy in front of it"
                    .to_owned(),
            );
        }
        if self.media.url_preview_allow_private_addresses {
            warnings.push(
                "media.url_preview_allow_private_addresses = true: URL previews may reach loopback and private networks"
                    .to_owned(),
            );
        }
        if !self.storage.sync_writes {
            warnings.push(
                "storage.sync_writes = false: a power loss may lose the last writes".to_owned(),
            );
        }
        warnings
    }
}

/// Sets `key` (`FOO` or `SECTION__FOO`) in `table`, typed like the default value at that key.
fn apply_env_override(
    table: &mut toml::Table,
    defaults: &toml::Table,
    key: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let path: Vec<String> = key
        .split("__")
        .map(|part| part.to_ascii_lowercase())
        .collect();
    let unknown = || {
        ConfigError(format!(
            "{ENV_PREFIX}{key} does not name a configuration key"
        ))
    };
    let (leaf, sections) = path.split_last().ok_or_else(unknown)?;
    let mut target = table;
    let mut default_section = defaults;
    for section in sections {
        default_section = match default_section.get(section) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(unknown()),
        };
        let entry = target
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        target = entry.as_table_mut().ok_or_else(|| {
            ConfigError(format!("{section} must be a section in the config file"))
        })?;
    }
    let value = match default_section.get(leaf) {
        Some(toml::Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => {
                return Err(ConfigError(format!(
                    "{ENV_PREFIX}{key} must be true or false, not {raw:?}"
                )));
            }
        },
        Some(toml::Value::Integer(_)) => toml::Value::Integer(raw.parse().map_err(|_| {
            ConfigError(format!("{ENV_PREFIX}{key} must be an integer, not {raw:?}"))
        })?),
        Some(toml::Value::Float(_)) => toml::Value::Float(raw.parse().map_err(|_| {
            ConfigError(format!("{ENV_PREFIX}{key} must be a number, not {raw:?}"))
        })?),
        Some(toml::Value::Table(_)) | Some(toml::Value::Array(_)) => {
            return Err(ConfigError(format!(
                "{ENV_PREFIX}{key} names a section; set its keys instead"
            )));
        }
        // Strings and unset optional strings.
        Some(_) | None
            if is_known_optional(sections, leaf) || default_section.contains_key(leaf) =>
        {
            toml::Value::String(raw.to_owned())
        }
        _ => return Err(unknown()),
    };
    target.insert(leaf.clone(), value);
    Ok(())
}

/// Optional string keys are absent from the serialized defaults; they are listed here so the
/// environment can still set them.
fn is_known_optional(sections: &[String], leaf: &str) -> bool {
    let optional: &[&str] = match sections {
        [] => &["registration_token", "registration_shared_secret"],
        [s] if s == "well_known" => &["client", "server", "support_page"],
        [s] if s == "federation" => &["tls_certificate", "tls_private_key"],
        [s] if s == "media" => &["path"],
        _ => &[],
    };
    optional.contains(&leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(config.server_name, "localhost");
        assert_eq!(config.port, 8008);
        assert_eq!(config.database_path, PathBuf::from("./data"));
        assert!(!config.allow_registration);
    }

    #[test]
    fn env_overrides_file_and_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hearth.toml");
        std::fs::write(
            &file,
            "port = 9000\nserver_name = \"example.org\"\n[rate_limits]\nenabled = true\n",
        )
        .unwrap();
        let config = Config::load_with_env(
            Some(&file),
            env(&[
                ("HEARTH_PORT", "9100"),
                ("HEARTH_REGISTRATION_TOKEN", "1234"),
                ("HEARTH_ALLOW_REGISTRATION", "true"),
                ("HEARTH_RATE_LIMITS__ENABLED", "false"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.port, 9100);
        assert_eq!(config.server_name, "example.org");
        assert_eq!(config.registration_token.as_deref(), Some("1234"));
        assert!(config.allow_registration);
        assert!(!config.rate_limits.enabled);
    }

    #[test]
    fn example_toml_states_the_defaults() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/example.toml"));
        let example = Config::load_with_env(Some(path), env(&[])).unwrap();
        let as_text = |c: &Config| toml::to_string(c).unwrap();
        assert_eq!(as_text(&example), as_text(&Config::default()));
        let text = std::fs::read_to_string(path).unwrap();
        for key in [
            "registration_token",
            "registration_shared_secret",
            "client =",
            "server =",
            "support_page",
            "tls_certificate",
            "tls_private_key",
            "[federation.resolve]",
            "[media]",
            "# path =",
        ] {
            assert!(text.contains(key), "example.toml does not mention {key}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(Config::load_with_env(None, env(&[("HEARTH_NOPE", "1")])).is_err());
        assert!(Config::load_with_env(None, env(&[("HEARTH_PORT", "eighty")])).is_err());
        assert!(Config::load_with_env(None, env(&[("HEARTH_SERVER_NAME", "bad name!")])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hearth.toml");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[])).unwrap_err();
        assert!(err.0.contains("prot"), "{err}");
    }

    #[test]
    fn federation_settings_are_checked() {
        let config = Config::load_with_env(
            None,
            env(&[
                ("HEARTH_FEDERATION__ENABLED", "true"),
                ("HEARTH_FEDERATION__PORT", "0"),
                ("HEARTH_FEDERATION__ALLOW_PRIVATE_ADDRESSES", "on"),
            ]),
        )
        .unwrap();
        assert!(config.federation.enabled && config.federation.allow_private_addresses);
        assert_eq!(config.federation.port, 0);

        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "").unwrap();
        let only_cert = env(&[("HEARTH_FEDERATION__TLS_CERTIFICATE", cert.to_str().unwrap())]);
        let err = Config::load_with_env(None, only_cert).unwrap_err();
        assert!(err.0.contains("together"), "{err}");

        let file = dir.path().join("hearth.toml");
        std::fs::write(&file, "[federation.resolve]\nhs1 = \"127.0.0.2:8448\"\n").unwrap();
        let config = Config::load_with_env(Some(&file), env(&[])).unwrap();
        let table = config.federation.resolve_table().unwrap();
        assert_eq!(table.len(), 1);
        std::fs::write(&file, "[federation.resolve]\nhs1 = \"somewhere\"\n").unwrap();
        let err = Config::load_with_env(Some(&file), env(&[])).unwrap_err();
        assert!(err.0.contains("IP:port"), "{err}");
        std::fs::write(
            &file,
            "[federation]\ntrusted_ca_files = [\"/nonexistent/ca.pem\"]\n",
        )
        .unwrap();
        assert!(Config::load_with_env(Some(&file), env(&[])).is_err());
    }
}
