//! The `[media]` section: where uploads live, how large they may be, which endpoints serve
//! them, and the URL-preview fetcher's limits.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The media repository (uploads, downloads, thumbnails, URL previews).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Directory of the media files. Unset: `<database_path>/media`.
    pub path: Option<PathBuf>,
    /// Largest accepted upload, in bytes (`413 M_TOO_LARGE` above it).
    pub max_upload_size: usize,
    /// Media uploaded while this is on is served only by the authenticated
    /// `/_matrix/client/v1/media/…` endpoints, as the spec recommends; the legacy
    /// `/_matrix/media/v3/download|thumbnail` keep serving media uploaded while it was off
    /// (Synapse's setting of the same name).
    pub enable_authenticated_media: bool,
    /// How long an id from `POST /_matrix/media/v1/create` may wait for its upload, in seconds.
    pub unused_expiry_secs: u64,
    /// Most ids one user may hold from `/create` without having uploaded to them.
    pub max_pending_uploads: usize,
    /// Largest image (width × height) the thumbnailer decodes; bigger ones get no thumbnail.
    pub max_image_pixels: u64,
    /// Serve `GET /_matrix/client/v1/media/preview_url`: the server fetches pages users post.
    pub url_preview: bool,
    /// Let URL previews reach loopback, private, link-local and reserved addresses. Keep it off:
    /// on it lets any user make this server fetch from its own network.
    pub url_preview_allow_private_addresses: bool,
    /// Domains never previewed; an entry also covers its subdomains (`example.com` covers
    /// `www.example.com`).
    pub url_preview_deny_domains: Vec<String>,
    /// Most bytes read of a previewed page or image.
    pub url_preview_max_size: usize,
    /// Longest a preview may take (connecting, redirects and reading together), in seconds.
    pub url_preview_timeout_secs: u64,
    /// Most redirects a preview follows.
    pub url_preview_max_redirects: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_upload_size: 50 * 1024 * 1024,
            enable_authenticated_media: true,
            unused_expiry_secs: 24 * 3600,
            max_pending_uploads: 5,
            max_image_pixels: 32_000_000,
            url_preview: false,
            url_preview_allow_private_addresses: false,
            url_preview_deny_domains: Vec::new(),
            url_preview_max_size: 10 * 1024 * 1024,
            url_preview_timeout_secs: 10,
            url_preview_max_redirects: 5,
        }
    }
}

impl MediaConfig {
    /// Where media files live for a database at `database_path`.
    pub fn directory(&self, database_path: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| database_path.join("media"))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_upload_size == 0 {
            return Err(ConfigError(
                "media.max_upload_size must be at least 1 byte".into(),
            ));
        }
        if self.max_pending_uploads == 0 {
            return Err(ConfigError(
                "media.max_pending_uploads must be at least 1".into(),
            ));
        }
        if let Some(bad) = self
            .url_preview_deny_domains
            .iter()
            .find(|d| d.is_empty() || d.contains(['/', ':', ' ']))
        {
            return Err(ConfigError(format!(
                "media.url_preview_deny_domains: {bad:?} is not a domain name"
            )));
        }
        Ok(())
    }
}
