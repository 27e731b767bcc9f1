//! Checking one ed25519 signature on a signed key object (ruma's signing code: canonical
//! JSON without `signatures` and `unsigned`).

use ruma::{
    CanonicalJsonObject,
    serde::{Base64, base64::Standard},
    signatures::SigningKeyAlgorithm,
};
use serde_json::value::RawValue;

/// The object as canonical JSON, or why it is not one.
pub fn canonical(json: &RawValue) -> Result<CanonicalJsonObject, String> {
    serde_json::from_str(json.get()).map_err(|e| format!("not a canonical JSON object: {e}"))
}

/// Whether `object` carries a valid signature by `signer` with key `key_id` (`ed25519:…`),
/// whose public key is `public_key` (unpadded base64).
pub fn verify(object: &CanonicalJsonObject, signer: &str, key_id: &str, public_key: &str) -> bool {
    let Some(signature) = object
        .get("signatures")
        .and_then(|s| s.as_object())
        .and_then(|s| s.get(signer))
        .and_then(|s| s.as_object())
        .and_then(|s| s.get(key_id))
        .and_then(|s| s.as_str())
    else {
        return false;
    };
    let (Ok(signature), Ok(public_key)) = (
        Base64::<Standard>::parse(signature),
        Base64::<Standard>::parse(public_key),
    ) else {
        return false;
    };
    let Ok(canonical) = ruma::signatures::to_canonical_json_string_for_signing(object) else {
        return false;
    };
    ruma::signatures::verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        public_key.as_bytes(),
        signature.as_bytes(),
        canonical.as_bytes(),
    )
    .is_ok()
}

/// The single ed25519 public key of a cross-signing key object: (`ed25519:…` id, key).
pub fn single_key(object: &CanonicalJsonObject) -> Option<(String, String)> {
    let keys = object.get("keys")?.as_object()?;
    let mut ed25519 = keys
        .iter()
        .filter(|(id, _)| id.starts_with("ed25519:"))
        .filter_map(|(id, key)| Some((id.clone(), key.as_str()?.to_owned())));
    let first = ed25519.next()?;
    ed25519.next().is_none().then_some(first)
}
