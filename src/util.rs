//! Small helpers shared by services: clocks and random values.

use base64::Engine;
use rand::RngCore;

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A 256-bit random secret, URL-safe base64, with a short prefix naming its kind (so a leaked
/// token is recognisable in logs and by secret scanners).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random string of `len` characters from `a-z0-9` (generated usernames, UIAA session ids).
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Constant-time equality of two secrets given as strings.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    // Lengths are not secret; the bytes are compared without an early exit.
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
