//! The catalogue of column families: every table Hearth stores, with its key and value layout.
//!
//! Keys are built only through `storage::codec`; values are JSON documents of the record types
//! named here unless said otherwise. Bump [`SCHEMA_VERSION`] and add a migration in
//! `storage::migrate` whenever a layout below changes.

/// Version of the on-disk layout described in this file.
pub const SCHEMA_VERSION: u64 = 1;

/// One column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Server-wide values. Key: ASCII name (`schema_version`, …). Value: per key
    /// (`schema_version` is a big-endian u64).
    Meta,
    /// Accounts. Key: user localpart (UTF-8). Value: `service::users::UserRecord`.
    Users,
    /// Profiles. Key: user localpart. Value: `service::profiles::ProfileRecord`.
    Profiles,
    /// Devices. Key: localpart ‖ 0xFF ‖ device id. Value: `service::sessions::DeviceRecord`.
    Devices,
    /// Access tokens. Key: SHA-256 of the token (32 bytes). Value:
    /// `service::sessions::AccessTokenRecord`. The token itself is never stored.
    AccessTokens,
    /// Refresh tokens. Key: SHA-256 of the token. Value: `service::sessions::RefreshTokenRecord`.
    RefreshTokens,
}

impl Cf {
    /// Every column family, in creation order.
    pub const ALL: &'static [Cf] = &[
        Cf::Meta,
        Cf::Users,
        Cf::Profiles,
        Cf::Devices,
        Cf::AccessTokens,
        Cf::RefreshTokens,
    ];

    /// The RocksDB name of the column family.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Users => "users",
            Cf::Profiles => "profiles",
            Cf::Devices => "devices",
            Cf::AccessTokens => "access_tokens",
            Cf::RefreshTokens => "refresh_tokens",
        }
    }
}
