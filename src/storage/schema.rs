//! The catalogue of column families: every table Hearth stores, with its key and value layout.
//!
//! Keys are built only through `storage::codec`; values are JSON documents of the record types
//! named here unless said otherwise. Bump [`SCHEMA_VERSION`] and add a migration in
//! `storage::migrate` whenever a layout below changes. Adding a new table needs no bump: missing
//! column families are created empty at open.

/// Version of the on-disk layout described in this file.
pub const SCHEMA_VERSION: u64 = 2;

/// Declares the column families once: the enum, [`Cf::ALL`] and [`Cf::name`] cannot drift apart.
macro_rules! column_families {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// One column family.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Cf {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Cf {
            /// Every column family, in creation order.
            pub const ALL: &'static [Cf] = &[$(Cf::$variant,)*];

            /// The RocksDB name of the column family.
            pub fn name(self) -> &'static str {
                match self {
                    $(Cf::$variant => $name,)*
                }
            }
        }
    };
}

column_families! {
    /// Server-wide values. Key: ASCII name (`schema_version`, …). Value: per key
    /// (`schema_version` is a big-endian u64).
    Meta => "meta",
    /// Accounts. Key: user localpart (UTF-8). Value: `service::users::UserRecord`.
    Users => "users",
    /// Profiles. Key: user localpart. Value: `service::users::profiles::ProfileRecord`.
    Profiles => "profiles",
    /// Devices. Key: localpart ‖ 0xFF ‖ device id. Value: `service::users::sessions::DeviceRecord`.
    Devices => "devices",
    /// Access tokens. Key: SHA-256 of the token (32 bytes). Value:
    /// `service::users::sessions::AccessTokenRecord`. The token itself is never stored.
    AccessTokens => "access_tokens",
    /// Refresh tokens. Key: SHA-256 of the token. Value: `service::users::sessions::RefreshTokenRecord`.
    RefreshTokens => "refresh_tokens",
    /// Room id → short room id. Key: room id. Value: u64.
    RoomShortIds => "room_short_ids",
    /// Event id → where the event lives. Key: event id. Value: `service::rooms::EventLocation`.
    EventIndex => "event_index",
    /// Short event id → event id. Key: u64. Value: event id string.
    EventIdsByShort => "event_ids_by_short",
    /// (event type, state key) → short state key. Key: type ‖ 0xFF ‖ state key (the byte 0xFF;
    /// schema 1 joined them with the character U+00FF, which is ambiguous). Value: u64.
    StateKeyShortIds => "state_key_short_ids",
    /// Short state key → (event type, state key). Key: u64. Value: [type, state key].
    StateKeysByShort => "state_keys_by_short",
    /// The timeline. Key: short room id ‖ stream count (16 bytes, big-endian, so RocksDB order
    /// is room order then time order). Value: the PDU as canonical JSON plus `event_id` and
    /// `room_id` fields.
    Pdus => "pdus",
    /// State snapshots as deltas. Key: short state hash (u64). Value:
    /// `service::rooms::state::StateDelta` (parent snapshot, added and removed entries).
    StateSnapshots => "state_snapshots",
    /// State before each event. Key: short event id. Value: short state hash.
    EventStateBefore => "event_state_before",
    /// Per-room bookkeeping. Key: short room id. Value: `service::rooms::RoomRecord`
    /// (version, current snapshot, forward extremities, depth).
    Rooms => "rooms",
    /// Current room state. Key: short room id ‖ short state key (16 bytes). Value: short event id.
    CurrentState => "current_state",
    /// Rooms of each user. Key: user id ‖ 0xFF ‖ room id. Value: `service::rooms::Membership`.
    UserRooms => "user_rooms",
    /// Members of each room (reverse of `user_rooms`). Key: room id ‖ 0xFF ‖ user id. Value:
    /// membership (`join`, `invite`, `leave`, `ban`, `knock`).
    RoomMembers => "room_members",
    /// Sync filters. Key: user id ‖ 0xFF ‖ filter id. Value: the filter JSON.
    Filters => "filters",
    /// Account data. Key: user id ‖ 0xFF ‖ (room id or empty) + 0x00 + event type. Value:
    /// `service::account_data::AccountDataRecord` (content and stream position).
    AccountData => "account_data",
    /// Read receipts. Key: room id ‖ 0xFF ‖ user id + 0x00 + receipt type + 0x00 + thread id.
    /// Value: `service::ephemeral::ReceiptRecord`.
    Receipts => "receipts",
    /// Send-to-device messages waiting for delivery. Key: user id ‖ 0xFF ‖ device id + 0x00 +
    /// stream position (20 digits). Value: `service::ephemeral::to_device::ToDeviceMessage`.
    ToDevice => "to_device",
    /// Transaction ids of sent events. Key: user id ‖ 0xFF ‖ JSON `[device, room, txn]`.
    /// Value: event id. Send-to-device txns use JSON `[device, "sendToDevice", txn]` → `true`.
    TransactionIds => "transaction_ids",
    /// Room aliases. Key: alias. Value: `service::rooms::aliases::AliasRecord`.
    Aliases => "aliases",
    /// Aliases of each room (reverse of `aliases`). Key: room id ‖ 0xFF ‖ alias. Value: `true`.
    RoomAliases => "room_aliases",
    /// Rooms published in the room directory. Key: room id. Value: `true`.
    PublicRooms => "public_rooms",
    /// Events relating to an event (`m.relates_to` with a `rel_type`). Key: parent event id ‖
    /// 0xFF ‖ child stream count (u64 BE). Value: `service::rooms::relations::Relation`.
    Relations => "relations",
    /// Thread roots. Key: room id ‖ 0xFF ‖ root event id. Value:
    /// `service::rooms::relations::ThreadRecord`.
    Threads => "threads",
    /// Rooms whose current join rule is `public` (the user directory searches their members).
    /// Key: room id. Value: `true`.
    PublicJoinRule => "public_join_rule",
    /// Full-text index of message bodies, room names and topics. Key: room id ‖ 0x00 ‖ token
    /// ‖ 0xFF ‖ stream count. Value: the fields holding the token (`content.body`, …).
    SearchIndex => "search_index",
    /// Abuse reports for admins. Key: stream count (u64). Value: `service::reports::Report`.
    Reports => "reports",
}
