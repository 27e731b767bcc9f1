//! Named composite keys of single tables, for keys with more than two parts. Each is encoded
//! part by part with the codec's separator (see [`super::codec`]), so a prefix scan over its
//! leading parts ([`codec::prefix_of`]) finds exactly their rows, in the order of the rest.
//! Schema 3 and earlier joined the inner parts of these with U+0000 inside one string part;
//! `storage::migrate` rewrites those rows.

use super::codec::{self, KeyCodec, KeyReader};

/// An account data entry (`account_data`): user ‖ room id (empty for global data) ‖ event
/// type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDataKey {
    pub user: String,
    /// `None` for global account data.
    pub room: Option<String>,
    pub kind: String,
}

impl KeyCodec for AccountDataKey {
    fn encode_into(&self, out: &mut Vec<u8>) {
        codec::push_text(out, &self.user);
        codec::push_text(out, self.room.as_deref().unwrap_or(""));
        out.extend_from_slice(self.kind.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = KeyReader::new(bytes);
        let user = reader.text()?;
        let room = Some(reader.text()?).filter(|room| !room.is_empty());
        let kind = reader.last_text()?;
        Some(Self { user, room, kind })
    }
}

/// A read receipt (`receipts`): room id ‖ user id ‖ receipt type ‖ thread id (empty for
/// unthreaded receipts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptKey {
    pub room: String,
    pub user: String,
    pub receipt_type: String,
    /// `""` for an unthreaded receipt.
    pub thread: String,
}

impl KeyCodec for ReceiptKey {
    fn encode_into(&self, out: &mut Vec<u8>) {
        codec::push_text(out, &self.room);
        codec::push_text(out, &self.user);
        codec::push_text(out, &self.receipt_type);
        out.extend_from_slice(self.thread.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = KeyReader::new(bytes);
        Some(Self {
            room: reader.text()?,
            user: reader.text()?,
            receipt_type: reader.text()?,
            thread: reader.last_text()?,
        })
    }
}

/// A queued send-to-device message (`to_device`): user id ‖ device id ‖ stream position, so a
/// device's messages are one prefix, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDeviceKey {
    pub user: String,
    pub device: String,
    pub position: u64,
}

impl KeyCodec for ToDeviceKey {
    fn encode_into(&self, out: &mut Vec<u8>) {
        codec::push_text(out, &self.user);
        codec::push_text(out, &self.device);
        self.position.encode_into(out);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = KeyReader::new(bytes);
        Some(Self {
            user: reader.text()?,
            device: reader.text()?,
            position: reader.last_u64()?,
        })
    }
}

/// A posting of the full-text index (`search_index`): room id ‖ token ‖ stream count, so a
/// token's events in a room are one prefix, in timeline order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchKey {
    pub room: String,
    pub token: String,
    pub count: u64,
}

impl KeyCodec for SearchKey {
    fn encode_into(&self, out: &mut Vec<u8>) {
        codec::push_text(out, &self.room);
        codec::push_text(out, &self.token);
        self.count.encode_into(out);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = KeyReader::new(bytes);
        Some(Self {
            room: reader.text()?,
            token: reader.text()?,
            count: reader.last_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
