//! Key codec: the single place that turns typed keys into RocksDB bytes and back.
//!
//! Composite keys join their parts with 0xFF, a byte that never occurs in UTF-8, so a prefix
//! scan over the first part finds exactly its rows and byte order follows part order. Numbers
//! are 8 bytes big-endian (numeric order is byte order) and come last. The named key types of
//! single tables are in [`super::keys`], built from [`push_text`] and [`KeyReader`].

/// Separator between the parts of a composite key.
pub const SEPARATOR: u8 = 0xFF;

/// A value usable as a table key.
pub trait KeyCodec: Sized {
    /// Appends the key's bytes to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
    /// Reads a key back; `None` for bytes that are not a valid key of this type.
    fn decode(bytes: &[u8]) -> Option<Self>;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

impl KeyCodec for String {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

impl KeyCodec for [u8; 32] {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

/// Big-endian, so numeric order is byte order.
impl KeyCodec for u64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// Two numbers, e.g. (short room id, stream count): 16 bytes, ordered by the first then the
/// second.
impl KeyCodec for (u64, u64) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (first, second) = (bytes.get(..8)?, bytes.get(8..)?);
        Some((
            u64::from_be_bytes(first.try_into().ok()?),
            u64::from_be_bytes(second.try_into().ok()?),
        ))
    }
}

/// A UTF-8 part then a number, e.g. (parent event id, child position): the number sorts
/// numerically within each first part.
impl KeyCodec for (String, u64) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.len().checked_sub(9)?;
        (bytes[split] == SEPARATOR).then_some(())?;
        let first = std::str::from_utf8(&bytes[..split]).ok()?;
        let second = u64::from_be_bytes(bytes[split + 1..].try_into().ok()?);
        Some((first.to_owned(), second))
    }
}

/// Two UTF-8 parts, e.g. (localpart, device id).
impl KeyCodec for (String, String) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(self.1.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == SEPARATOR)?;
        let first = std::str::from_utf8(&bytes[..split]).ok()?;
        let second = std::str::from_utf8(&bytes[split + 1..]).ok()?;
        Some((first.to_owned(), second.to_owned()))
    }
}

/// The prefix that selects every composite key whose first part is `first`.
pub fn prefix(first: &str) -> Vec<u8> {
    prefix_of(&[first])
}

/// The prefix that selects every composite key whose first parts are `parts`.
pub fn prefix_of(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        push_text(&mut out, part);
    }
    out
}

/// The smallest encoded key greater than `key`: where a range scan resumes after it.
pub fn just_after(key: &impl KeyCodec) -> Vec<u8> {
    let mut out = key.encode();
    out.push(0);
    out
}

/// Appends a UTF-8 part followed by the separator (a part of a composite key that is not its
/// last).
pub fn push_text(out: &mut Vec<u8>, part: &str) {
    out.extend_from_slice(part.as_bytes());
    out.push(SEPARATOR);
}

/// Reads a composite key part by part, in the order it was written: UTF-8 parts end at the
/// separator, a number is the last 8 bytes.
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next UTF-8 part (written by [`push_text`]).
    pub fn text(&mut self) -> Option<String> {
        let end = self.rest.iter().position(|b| *b == SEPARATOR)?;
        let part = std::str::from_utf8(&self.rest[..end]).ok()?;
        self.rest = &self.rest[end + 1..];
        Some(part.to_owned())
    }

    /// The last part as UTF-8 (it carries no separator).
    pub fn last_text(self) -> Option<String> {
        (!self.rest.contains(&SEPARATOR)).then_some(())?;
        String::from_utf8(self.rest.to_vec()).ok()
    }

    /// The last part as a big-endian number.
    pub fn last_u64(self) -> Option<u64> {
        u64::decode(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_round_trip_and_prefix_matches() {
        let key = ("alice".to_owned(), "DEVICE".to_owned());
        let bytes = key.encode();
        assert_eq!(<(String, String)>::decode(&bytes), Some(key));
        assert!(bytes.starts_with(&prefix("alice")));
        assert!(
            !("alice2".to_owned(), "X".to_owned())
                .encode()
                .starts_with(&prefix("alice"))
        );
    }

    #[test]
    fn string_then_number_round_trips_and_orders() {
        let key = ("$event".to_owned(), 258u64);
        assert_eq!(<(String, u64)>::decode(&key.encode()), Some(key.clone()));
        assert!(("$event".to_owned(), 2u64).encode() < key.encode());
        assert!(key.encode().starts_with(&prefix("$event")));
        assert_eq!(<(String, u64)>::decode(b"short"), None);
    }

    #[test]
    fn numbers_sort_as_bytes() {
        assert!(255u64.encode() < 256u64.encode());
        assert_eq!(u64::decode(&7u64.encode()), Some(7));
        assert_eq!(u64::decode(b"short"), None);
    }
}
