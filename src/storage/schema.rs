//! The catalogue of column families: every table Hearth stores, with its key and value layout.
//!
//! Keys are built only through `storage::codec`; values are JSON documents of the record types
//! named here unless said otherwise. Bump [`SCHEMA_VERSION`] and add a migration in
//! `storage::migrate` whenever a layout below changes. Adding a new table needs no bump: missing
//! column families are created empty at open.

/// Version of the on-disk layout described in this file.
pub const SCHEMA_VERSION: u64 = 4;

/// A table: its column family with the types of its keys and values. Each column family has
/// one, declared in [`tables`]; services open tables only through these, so two services
/// cannot read one column family as different types.
pub struct TableDef<K, V> {
    pub cf: Cf,
    types: std::marker::PhantomData<fn() -> (K, V)>,
}

impl<K, V> TableDef<K, V> {
    pub const fn new(cf: Cf) -> Self {
        Self {
            cf,
            types: std::marker::PhantomData,
        }
    }
}

impl<K, V> Clone for TableDef<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for TableDef<K, V> {}

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
    /// Event id → where the event lives. Key: event id. Value:
    /// `service::rooms::timeline::EventLocation`.
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
    /// Per-room bookkeeping. Key: short room id. Value: `service::rooms::registry::RoomRecord`
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
    /// Account data. Key: `storage::keys::AccountDataKey`, user id ‖ 0xFF ‖ room id (empty for
    /// global data) ‖ 0xFF ‖ event type (schema 3 joined room and type with U+0000). Value:
    /// `service::account_data::AccountDataRecord` (content and stream position).
    AccountData => "account_data",
    /// Read receipts. Key: `storage::keys::ReceiptKey`, room id ‖ 0xFF ‖ user id ‖ 0xFF ‖
    /// receipt type ‖ 0xFF ‖ thread id (empty: unthreaded; schema 3 joined the last three with
    /// U+0000). Value: `service::ephemeral::ReceiptRecord`.
    Receipts => "receipts",
    /// Send-to-device messages waiting for delivery. Key: `storage::keys::ToDeviceKey`, user id
    /// ‖ 0xFF ‖ device id ‖ 0xFF ‖ stream position (u64 BE; schema 3 had device + U+0000 + 20
    /// digits). Value: `service::ephemeral::to_device::ToDeviceMessage`.
    ToDevice => "to_device",
    /// Transaction ids of sent events. Key: user id ‖ 0xFF ‖ JSON `[device, room, txn]` for
    /// `/send`, `["redact", device, room, txn]` for `/redact`. Value: event id.
    TransactionIds => "transaction_ids",
    /// Transaction ids of send-to-device requests already handled (schema 2 kept them in
    /// `transaction_ids`). Key: user id ‖ 0xFF ‖ JSON `[device, "sendToDevice", txn]`. Value:
    /// `true`.
    ToDeviceTransactionIds => "to_device_transaction_ids",
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
    /// Full-text index of message bodies, room names and topics. Key: `storage::keys::SearchKey`,
    /// room id ‖ 0xFF ‖ token ‖ 0xFF ‖ stream count (u64 BE; schema 3 joined room and token with
    /// U+0000). Value: the fields holding the token (`content.body`, …).
    SearchIndex => "search_index",
    /// Abuse reports for admins. Key: stream count (u64). Value: `service::reports::Report`.
    Reports => "reports",
    /// Each user's push rules. Key: user id. Value: `service::push::rules::PushRulesRecord`
    /// (the ruleset and the stream position of its last change). Users without a row have the
    /// server-default ruleset.
    PushRules => "push_rules",
    /// What each notifying event means for each user's counts. Key: user id ‖ 0xFF ‖ short
    /// room id ‖ stream count (u64 BE each). Value: `service::push::notifications::PushMark`.
    PushActions => "push_actions",
    /// The notification list (`GET /notifications`). Key: user id ‖ 0xFF ‖ stream count. Value:
    /// `service::push::notifications::NotificationRecord`.
    Notifications => "notifications",
    /// Pushers. Key: user id ‖ 0xFF ‖ app id ‖ 0xFF ‖ pushkey. Value:
    /// `service::push::pushers::PusherRecord`.
    Pushers => "pushers",
    /// Pushes waiting for delivery to a gateway. Key: a count (u64 BE, so the queue is in
    /// order). Value: `service::push::gateway::PushJob`.
    PushQueue => "push_queue",
    /// Joins and leaves (only changes of being joined). Key: stream count of the membership
    /// event. Value: `service::rooms::members::JoinChange`.
    JoinChanges => "join_changes",
    /// Device identity keys as uploaded. Key: user id ‖ 0xFF ‖ device id. Value: the JSON.
    DeviceKeys => "device_keys",
    /// One-time keys in upload order. Key: user id ‖ 0xFF ‖ device id ‖ 0xFF ‖ algorithm ‖
    /// 0xFF ‖ upload count (u64 BE). Value: `service::e2ee::StoredOneTimeKey`.
    OneTimeKeys => "one_time_keys",
    /// One-time key ids per device. Key: user id ‖ 0xFF ‖ device id ‖ 0xFF ‖ key id. Value:
    /// the upload count the key is stored under.
    OneTimeKeyIds => "one_time_key_ids",
    /// Fallback keys. Key: user id ‖ 0xFF ‖ device id ‖ 0xFF ‖ algorithm. Value:
    /// `service::e2ee::FallbackKey`.
    FallbackKeys => "fallback_keys",
    /// Cross-signing keys. Key: user id ‖ 0xFF ‖ `master` | `self_signing` | `user_signing`.
    /// Value: the key JSON with the signatures it was uploaded with.
    CrossSigningKeys => "cross_signing_keys",
    /// Signatures uploaded later for a key. Key: target user ‖ 0xFF ‖ target key id (device
    /// id or public key) ‖ 0xFF ‖ signer user. Value: signer key id → signature.
    KeySignatures => "key_signatures",
    /// The key-change stream. Key: stream position. Value: the user id whose devices or
    /// cross-signing keys changed.
    KeyChanges => "key_changes",
    /// Key backup versions. Key: user id ‖ 0xFF ‖ version (u64 BE). Value:
    /// `service::e2ee::backup::BackupVersion`.
    BackupVersions => "backup_versions",
    /// Backed-up room keys. Key: user id ‖ 0xFF ‖ version (u64 BE) ‖ room id ‖ 0xFF ‖ session
    /// id. Value: the key backup data JSON.
    BackupKeys => "backup_keys",
    /// Media records. Key: origin server ‖ 0xFF ‖ media id. Value:
    /// `service::media::MediaRecord` (uploader, size, type, filename, created, SHA-256).
    Media => "media",
    /// Media ids reserved with `/create`, not uploaded yet. Key: origin ‖ 0xFF ‖ media id.
    /// Value: `service::media::PendingRecord` (owner, expiry).
    MediaPending => "media_pending",
    /// Reserved media ids of each user (reverse of `media_pending`). Key: user id ‖ 0xFF ‖
    /// media id. Value: expiry (ms since the epoch).
    MediaPendingByUser => "media_pending_by_user",
    /// Media each local user uploaded. Key: user id ‖ 0xFF ‖ origin ‖ 0xFF ‖ media id. Value:
    /// `true`.
    MediaByUser => "media_by_user",
    /// Files of the blob store and how many media records name each. Key: SHA-256 (32
    /// bytes). Value: `service::media::BlobRecord`.
    MediaBlobs => "media_blobs",
    /// Cached thumbnails. Key: hex SHA-256 of the original ‖ 0xFF ‖ size name (`96x96-crop`).
    /// Value: `service::media::ThumbnailRecord`.
    MediaThumbnails => "media_thumbnails",
    /// Cached URL previews. Key: the URL. Value: `service::media::PreviewRecord`.
    MediaPreviews => "media_previews",
    /// Other servers' signing keys. Key: server name. Value:
    /// `service::federation::keys::StoredServerKeys`.
    RemoteServerKeys => "remote_server_keys",
    /// Events waiting for delivery to another server. Key: destination server name ‖ 0xFF ‖
    /// the event's stream position (u64 BE). Value: event id string.
    FederationQueue => "federation_queue",
}

/// Every table with its key and value types (layouts in [`Cf`]'s documentation).
pub mod tables {
    use serde_json::{Value, value::RawValue};

    use super::{Cf, TableDef};
    use crate::service::{
        account_data::AccountDataRecord,
        e2ee::{FallbackKey, StoredOneTimeKey, backup::BackupVersion},
        ephemeral::{ReceiptRecord, to_device::ToDeviceMessage},
        federation::keys::StoredServerKeys,
        media::{BlobRecord, MediaRecord, PendingRecord, PreviewRecord, ThumbnailRecord},
        push::{
            gateway::PushJob,
            notifications::{NotificationRecord, PushMark},
            pushers::PusherRecord,
            rules::PushRulesRecord,
        },
        reports::Report,
        rooms::{
            EventLocation, Membership, RoomRecord,
            aliases::AliasRecord,
            members::JoinChange,
            relations::{Relation, ThreadRecord},
            state::StateDelta,
        },
        server_keys::StoredKey,
        users::{
            UserRecord,
            profiles::ProfileRecord,
            sessions::{AccessTokenRecord, DeviceRecord, RefreshTokenRecord},
        },
    };
    use crate::storage::keys::{AccountDataKey, ReceiptKey, SearchKey, ToDeviceKey};

    macro_rules! tables {
        ($($name:ident: $cf:ident => $key:ty => $value:ty,)*) => {
            $(pub const $name: TableDef<$key, $value> = TableDef::new(Cf::$cf);)*
            /// The column family of every table above (a test checks each appears once).
            pub const TABLE_CFS: &[Cf] = &[$(Cf::$cf,)*];
        };
    }

    type Pair = (String, String);
    use std::collections::BTreeMap;

    tables! {
        SERVER_SIGNING_KEYS: Meta => String => StoredKey,
        USERS: Users => String => UserRecord,
        PROFILES: Profiles => String => ProfileRecord,
        DEVICES: Devices => Pair => DeviceRecord,
        ACCESS_TOKENS: AccessTokens => [u8; 32] => AccessTokenRecord,
        REFRESH_TOKENS: RefreshTokens => [u8; 32] => RefreshTokenRecord,
        ROOM_SHORT_IDS: RoomShortIds => String => u64,
        EVENT_INDEX: EventIndex => String => EventLocation,
        EVENT_IDS_BY_SHORT: EventIdsByShort => u64 => String,
        STATE_KEY_SHORT_IDS: StateKeyShortIds => Pair => u64,
        STATE_KEYS_BY_SHORT: StateKeysByShort => u64 => Pair,
        PDUS: Pdus => (u64, u64) => Box<RawValue>,
        STATE_SNAPSHOTS: StateSnapshots => u64 => StateDelta,
        EVENT_STATE_BEFORE: EventStateBefore => u64 => u64,
        ROOMS: Rooms => u64 => RoomRecord,
        CURRENT_STATE: CurrentState => (u64, u64) => u64,
        USER_ROOMS: UserRooms => Pair => Membership,
        ROOM_MEMBERS: RoomMembers => Pair => String,
        FILTERS: Filters => Pair => Value,
        ACCOUNT_DATA: AccountData => AccountDataKey => AccountDataRecord,
        RECEIPTS: Receipts => ReceiptKey => ReceiptRecord,
        TO_DEVICE: ToDevice => ToDeviceKey => ToDeviceMessage,
        TRANSACTION_IDS: TransactionIds => Pair => String,
        TO_DEVICE_TRANSACTION_IDS: ToDeviceTransactionIds => Pair => bool,
        ALIASES: Aliases => String => AliasRecord,
        ROOM_ALIASES: RoomAliases => Pair => bool,
        PUBLIC_ROOMS: PublicRooms => String => bool,
        RELATIONS: Relations => (String, u64) => Relation,
        THREADS: Threads => Pair => ThreadRecord,
        PUBLIC_JOIN_RULE: PublicJoinRule => String => bool,
        SEARCH_INDEX: SearchIndex => SearchKey => Vec<String>,
        REPORTS: Reports => u64 => Report,
        PUSH_RULES: PushRules => String => PushRulesRecord,
        PUSH_ACTIONS: PushActions => (String, u64, u64) => PushMark,
        NOTIFICATIONS: Notifications => (String, u64) => NotificationRecord,
        PUSHERS: Pushers => (String, String, String) => PusherRecord,
        PUSH_QUEUE: PushQueue => u64 => PushJob,
        JOIN_CHANGES: JoinChanges => u64 => JoinChange,
        DEVICE_KEYS: DeviceKeys => Pair => Box<RawValue>,
        ONE_TIME_KEYS: OneTimeKeys => (String, String, String, u64) => StoredOneTimeKey,
        ONE_TIME_KEY_IDS: OneTimeKeyIds => (String, String, String) => u64,
        FALLBACK_KEYS: FallbackKeys => (String, String, String) => FallbackKey,
        CROSS_SIGNING_KEYS: CrossSigningKeys => Pair => Box<RawValue>,
        KEY_SIGNATURES: KeySignatures => (String, String, String) => BTreeMap<String, String>,
        KEY_CHANGES: KeyChanges => u64 => String,
        BACKUP_VERSIONS: BackupVersions => (String, u64) => BackupVersion,
        BACKUP_KEYS: BackupKeys => (String, u64, String, String) => Box<RawValue>,
        MEDIA: Media => Pair => MediaRecord,
        MEDIA_PENDING: MediaPending => Pair => PendingRecord,
        MEDIA_PENDING_BY_USER: MediaPendingByUser => Pair => u64,
        MEDIA_BY_USER: MediaByUser => (String, String, String) => bool,
        MEDIA_BLOBS: MediaBlobs => [u8; 32] => BlobRecord,
        MEDIA_THUMBNAILS: MediaThumbnails => Pair => ThumbnailRecord,
        MEDIA_PREVIEWS: MediaPreviews => String => PreviewRecord,
        REMOTE_SERVER_KEYS: RemoteServerKeys => String => StoredServerKeys,
        FEDERATION_QUEUE: FederationQueue => (String, u64) => String,
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_column_family_has_exactly_one_table() {
            for cf in Cf::ALL {
                let count = TABLE_CFS.iter().filter(|c| *c == cf).count();
                assert_eq!(count, 1, "{cf:?} is declared by {count} tables");
            }
        }
    }
}
