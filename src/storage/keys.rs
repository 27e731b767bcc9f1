//! Named composite keys of single tables, for keys with more than two parts. Each is encoded
//! part by part with the codec's separator (see [`super::codec`]), so a prefix scan over its
//! leading parts ([`super::codec::prefix_of`]) finds exactly their rows, in the order of the rest.
//! Schema 3 and earlier joined the inner parts of these with U+0000 inside one string part;
//! `storage::migrate` rewrites those rows.

use super::codec::composite_key;

composite_key! {
    /// An account data entry (`account_data`): user id ‖ room id (empty for global data) ‖
    /// event type.
    AccountDataKey {
        user: String,
        /// `None` for global account data.
        room: Option<String>,
        kind: String,
    }
}

composite_key! {
    /// A read receipt (`receipts`): room id ‖ user id ‖ receipt type ‖ thread id.
    ReceiptKey {
        room: String,
        user: String,
        receipt_type: String,
        /// `""` for an unthreaded receipt.
        thread: String,
    }
}

composite_key! {
    /// A queued send-to-device message (`to_device`): user id ‖ device id ‖ stream position,
    /// so a device's messages are one prefix, oldest first.
    ToDeviceKey {
        user: String,
        device: String,
        position: u64,
    }
}

composite_key! {
    /// A posting of the full-text index (`search_index`): room id ‖ token ‖ stream count, so a
    /// token's events in a room are one prefix, in timeline order.
    SearchKey {
        room: String,
        token: String,
        count: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::{self, KeyCodec};

    fn round_trips<K: KeyCodec + PartialEq + std::fmt::Debug>(key: K) -> Vec<u8> {
        let bytes = key.encode();
        assert_eq!(K::decode(&bytes).as_ref(), Some(&key));
        bytes
    }

    #[test]
    fn account_data_keys_round_trip_with_and_without_room() {
        let global = round_trips(AccountDataKey {
            user: "@a:x".into(),
            room: None,
            kind: "m.direct".into(),
        });
        let in_room = round_trips(AccountDataKey {
            user: "@a:x".into(),
            room: Some("!r:x".into()),
            kind: "m.tag".into(),
        });
        for key in [&global, &in_room] {
            assert!(key.starts_with(&codec::prefix("@a:x")));
            assert!(!key.starts_with(&codec::prefix("@a:x2")));
        }
    }

    #[test]
    fn receipt_keys_round_trip_and_scan_by_room() {
        let key = round_trips(ReceiptKey {
            room: "!r:x".into(),
            user: "@a:x".into(),
            receipt_type: "m.read".into(),
            thread: String::new(),
        });
        round_trips(ReceiptKey {
            room: "!r:x".into(),
            user: "@a:x".into(),
            receipt_type: "m.read".into(),
            thread: "$root".into(),
        });
        assert!(key.starts_with(&codec::prefix("!r:x")));
        assert_eq!(ReceiptKey::decode(b"!r:x\xff@a:x"), None);
    }

    #[test]
    fn numbered_keys_sort_numerically_within_their_prefix() {
        let to_device = |position| ToDeviceKey {
            user: "@a:x".into(),
            device: "DEV".into(),
            position,
        };
        // 0xFF inside the number must not confuse decoding.
        let (low, high) = (round_trips(to_device(255)), round_trips(to_device(256)));
        assert!(low < high);
        assert!(high.starts_with(&codec::prefix_of(&["@a:x", "DEV"])));
        assert!(!high.starts_with(&codec::prefix_of(&["@a:x", "DE"])));
        let search = |count| SearchKey {
            room: "!r:x".into(),
            token: "hello".into(),
            count,
        };
        let (low, high) = (
            round_trips(search(u64::MAX - 1)),
            round_trips(search(u64::MAX)),
        );
        assert!(low < high);
        assert!(low.starts_with(&codec::prefix_of(&["!r:x", "hello"])));
        assert!(!low.starts_with(&codec::prefix_of(&["!r:x", "hell"])));
    }
}
