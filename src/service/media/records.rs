//! The media repository's stored records (values of the `media_*` tables) and media ids.

use serde::{Deserialize, Serialize};

/// One piece of media, local or (later) cached from a remote server. Key: (origin, media id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MediaRecord {
    /// The local user who uploaded it (`None` for remote media).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader: Option<String>,
    pub size: u64,
    /// `Content-Type` as uploaded (`None`: the client sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Hex SHA-256 of the bytes: the blob's name in the store.
    pub sha256: String,
    /// Uploaded while `media.enable_authenticated_media` was on: the legacy unauthenticated
    /// endpoints do not serve it.
    #[serde(default)]
    pub authenticated: bool,
}

impl MediaRecord {
    /// The digest as bytes (`None` for a corrupt record).
    pub fn digest(&self) -> Option<[u8; 32]> {
        hex::decode(&self.sha256).ok()?.try_into().ok()
    }
}

/// An id from `POST /_matrix/media/v1/create` waiting for its upload. Key: (origin, media id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingRecord {
    pub user: String,
    pub expires_ms: u64,
}

/// A stored file and how many media records name it. Key: its SHA-256.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub refs: u64,
}

/// A cached thumbnail of a blob. Key: (hex SHA-256 of the original, [`ThumbnailSpec::name`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThumbnailRecord {
    pub content_type: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
}

/// A cached URL preview. Key: the URL.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreviewRecord {
    pub fetched_ms: u64,
    /// The OpenGraph object sent to clients.
    pub data: serde_json::Value,
}

/// Length of the media ids this server makes.
const MEDIA_ID_LEN: usize = 24;

/// A new random media id (letters and digits).
pub fn new_media_id() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(MEDIA_ID_LEN)
        .map(char::from)
        .collect()
}

/// Whether `id` may be a media id: the spec's `[A-Za-z0-9_-]+`. Ids are never file names
/// (blobs are named by their digest), yet anything else is refused before any lookup.
pub fn is_valid_media_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_checked() {
        assert!(is_valid_media_id(&new_media_id()));
        assert!(is_valid_media_id("abc_DEF-123"));
        for bad in [
            "",
            "../etc",
            "a/b",
            "a.b",
            "mxc://x/y",
            "é",
            &"a".repeat(256),
        ] {
            assert!(!is_valid_media_id(bad), "{bad}");
        }
    }
}
