//! Key codec: the single place that turns typed keys into RocksDB bytes and back.
//!
//! Composite keys join their parts with 0xFF, a byte that never occurs in UTF-8, so a prefix
//! scan over the first part finds exactly its rows and byte order follows part order. Numbers
//! are 8 bytes big-endian (numeric order is byte order) and come last. The named key types of
//! single tables are in [`super::keys`], declared with [`composite_key!`].

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

/// A UTF-8 part then two numbers, e.g. (user id, short room id, stream count): ordered by
/// the first part, then numerically by each number.
impl KeyCodec for (String, u64, u64) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(&self.1.to_be_bytes());
        out.extend_from_slice(&self.2.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.len().checked_sub(17)?;
        (bytes[split] == SEPARATOR).then_some(())?;
        let first = std::str::from_utf8(&bytes[..split]).ok()?;
        let (second, third) = <(u64, u64)>::decode(&bytes[split + 1..])?;
        Some((first.to_owned(), second, third))
    }
}

/// Three UTF-8 parts, e.g. (user id, app id, pushkey).
impl KeyCodec for (String, String, String) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(self.1.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(self.2.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == SEPARATOR)?;
        let first = std::str::from_utf8(&bytes[..split]).ok()?;
        let (second, third) = <(String, String)>::decode(&bytes[split + 1..])?;
        Some((first.to_owned(), second, third))
    }
}

/// Three UTF-8 parts then a number, e.g. (user, device, algorithm, upload count).
impl KeyCodec for (String, String, String, u64) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        (self.0.clone(), self.1.clone(), self.2.clone()).encode_into(out);
        out.push(SEPARATOR);
        out.extend_from_slice(&self.3.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.len().checked_sub(9)?;
        (bytes[split] == SEPARATOR).then_some(())?;
        let (first, second, third) = <(String, String, String)>::decode(&bytes[..split])?;
        let fourth = u64::from_be_bytes(bytes[split + 1..].try_into().ok()?);
        Some((first, second, third, fourth))
    }
}

/// A UTF-8 part, a number, then two UTF-8 parts, e.g. (user, backup version, room, session).
impl KeyCodec for (String, u64, String, String) {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
        out.push(SEPARATOR);
        out.extend_from_slice(&self.1.to_be_bytes());
        (self.2.clone(), self.3.clone()).encode_into(out);
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        let split = bytes.iter().position(|b| *b == SEPARATOR)?;
        let first = std::str::from_utf8(&bytes[..split]).ok()?;
        let number = bytes.get(split + 1..split + 9)?;
        let second = u64::from_be_bytes(number.try_into().ok()?);
        let (third, fourth) = <(String, String)>::decode(bytes.get(split + 9..)?)?;
        Some((first.to_owned(), second, third, fourth))
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
        out.extend_from_slice(part.as_bytes());
        out.push(SEPARATOR);
    }
    out
}

/// The smallest encoded key greater than `key`: where a range scan resumes after it.
pub fn just_after(key: &impl KeyCodec) -> Vec<u8> {
    let mut out = key.encode();
    out.push(0);
    out
}

/// Writes a composite key part by part: the separator between parts, UTF-8 parts as they
/// are, numbers as 8 bytes big-endian (so byte order is numeric order).
pub struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> KeyWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, first: true }
    }

    fn separate(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(SEPARATOR);
        }
    }

    pub fn text(&mut self, part: &str) {
        self.separate();
        self.out.extend_from_slice(part.as_bytes());
    }

    pub fn number(&mut self, part: u64) {
        self.separate();
        self.out.extend_from_slice(&part.to_be_bytes());
    }
}

/// Reads back what a [`KeyWriter`] wrote, part by part in the same order. A UTF-8 part ends at
/// the next separator (it cannot hold one) or at the end; a number is 8 bytes.
pub struct KeyReader<'a> {
    rest: &'a [u8],
    first: bool,
}

impl<'a> KeyReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            first: true,
        }
    }

    fn separated(&mut self) -> Option<()> {
        if !std::mem::take(&mut self.first) {
            let (&SEPARATOR, rest) = self.rest.split_first()? else {
                return None;
            };
            self.rest = rest;
        }
        Some(())
    }

    pub fn text(&mut self) -> Option<String> {
        self.separated()?;
        let end = self
            .rest
            .iter()
            .position(|b| *b == SEPARATOR)
            .unwrap_or(self.rest.len());
        let (part, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(std::str::from_utf8(part).ok()?.to_owned())
    }

    pub fn number(&mut self) -> Option<u64> {
        self.separated()?;
        let (part, rest) = self.rest.split_at_checked(8)?;
        self.rest = rest;
        u64::decode(part)
    }

    /// Succeeds when every byte was read.
    pub fn finish(self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// One part of a composite key declared with [`composite_key!`].
pub trait KeyPart: Sized {
    fn write(&self, key: &mut KeyWriter<'_>);
    fn read(key: &mut KeyReader<'_>) -> Option<Self>;
}

impl KeyPart for String {
    fn write(&self, key: &mut KeyWriter<'_>) {
        key.text(self);
    }
    fn read(key: &mut KeyReader<'_>) -> Option<Self> {
        key.text()
    }
}

/// An optional UTF-8 part: `None` is stored empty (so `Some("")` reads back as `None`).
impl KeyPart for Option<String> {
    fn write(&self, key: &mut KeyWriter<'_>) {
        key.text(self.as_deref().unwrap_or(""));
    }
    fn read(key: &mut KeyReader<'_>) -> Option<Self> {
        Some(key.text()?).map(|text| (!text.is_empty()).then_some(text))
    }
}

impl KeyPart for u64 {
    fn write(&self, key: &mut KeyWriter<'_>) {
        key.number(*self);
    }
    fn read(key: &mut KeyReader<'_>) -> Option<Self> {
        key.number()
    }
}

/// Declares a composite key: a struct of named parts and its [`KeyCodec`], the parts encoded
/// in the order they are declared, so a prefix scan over the leading parts
/// ([`prefix_of`]) finds exactly their rows.
macro_rules! composite_key {
    ($(#[$meta:meta])* $name:ident { $($(#[$part_meta:meta])* $part:ident: $ty:ty,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            $($(#[$part_meta])* pub $part: $ty,)+
        }

        impl $crate::storage::codec::KeyCodec for $name {
            fn encode_into(&self, out: &mut Vec<u8>) {
                let mut key = $crate::storage::codec::KeyWriter::new(out);
                $($crate::storage::codec::KeyPart::write(&self.$part, &mut key);)+
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                let mut key = $crate::storage::codec::KeyReader::new(bytes);
                // Struct fields are evaluated in the order written: the parts' order.
                let decoded = Self {
                    $($part: $crate::storage::codec::KeyPart::read(&mut key)?,)+
                };
                key.finish()?;
                Some(decoded)
            }
        }
    };
}
pub(crate) use composite_key;

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
    fn three_part_keys_round_trip() {
        let key = ("@a:x".to_owned(), 7u64, 258u64);
        assert_eq!(
            <(String, u64, u64)>::decode(&key.encode()),
            Some(key.clone())
        );
        assert!(key.encode().starts_with(&prefix("@a:x")));
        let key = ("@a:x".to_owned(), "app".to_owned(), "key".to_owned());
        assert_eq!(<(String, String, String)>::decode(&key.encode()), Some(key));
        let key = ("@a:x".to_owned(), "DEV".to_owned(), "alg".to_owned(), 9u64);
        assert_eq!(
            <(String, String, String, u64)>::decode(&key.encode()),
            Some(key)
        );
        let key = (
            "@a:x".to_owned(),
            0xFF00u64,
            "!r:x".to_owned(),
            "s".to_owned(),
        );
        assert_eq!(
            <(String, u64, String, String)>::decode(&key.encode()),
            Some(key)
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
