//! The media repository: uploads (direct and reserved with `/create`), their records, the
//! blob store on disk, thumbnails and URL previews.
//!
//! Records are keyed by (origin server, media id), so remote media can be cached beside local
//! media later; today only this server's own media exists and a remote origin is not found.
//! Files are content-addressed ([`store`]); each blob counts the records naming it and goes
//! when the last one is deleted. Every change to records and counts happens under one mutex,
//! so an upload that finds its blob already on disk cannot race the deletion of that blob.

pub mod preview;
mod records;
pub mod store;
pub mod thumbnail;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::StatusCode;
use ruma::{OwnedMxcUri, OwnedServerName, ServerName, UserId};

pub use records::{
    BlobRecord, MediaRecord, PendingRecord, PreviewRecord, ThumbnailRecord, is_valid_media_id,
    now_ms,
};
use store::{BlobStore, TempBlob};

use crate::{
    config::{Config, MediaConfig},
    error::{Error, Result},
    storage::{Db, Table, codec, tables},
};

/// Longest a download waits for a reserved id's upload, whatever `timeout_ms` asks.
const MAX_UPLOAD_WAIT: Duration = Duration::from_secs(120);

/// A media error with the spec's errcode.
pub(crate) fn media_error(
    status: StatusCode,
    errcode: &'static str,
    message: impl Into<String>,
) -> Error {
    Error::Matrix {
        status,
        errcode,
        message: message.into(),
        extra: None,
    }
}

/// What a new upload says about itself.
pub struct NewUpload {
    pub uploader: String,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    /// The id reserved with `/create`, for `PUT /upload/{server}/{id}`; `None` makes a new id.
    pub reserved_id: Option<String>,
}

/// Where a media id stands.
pub enum Lookup {
    Found(MediaRecord),
    /// Reserved with `/create`, not uploaded yet.
    Pending,
    NotFound,
}

/// Owns the media tables and the blob store.
pub struct MediaService {
    db: Db,
    server_name: OwnedServerName,
    config: MediaConfig,
    pub store: BlobStore,
    media: Table<(String, String), MediaRecord>,
    pending: Table<(String, String), PendingRecord>,
    pending_by_user: Table<(String, String), u64>,
    by_user: Table<(String, String, String), bool>,
    blobs: Table<[u8; 32], BlobRecord>,
    thumbnails: Table<(String, String), ThumbnailRecord>,
    previews: Table<String, PreviewRecord>,
    /// Serializes every change of records and blob counts (see the module doc).
    write_lock: Mutex<()>,
    /// Bumped after each upload to a reserved id: downloads waiting for one look again.
    uploaded: tokio::sync::watch::Sender<u64>,
    thumbnailer: thumbnail::Thumbnailer,
    previewer: preview::Previewer,
}

impl MediaService {
    pub fn new(db: Db, config: &Config) -> Result<Arc<Self>> {
        let directory = config.media.directory(&config.database_path);
        let store = BlobStore::open(&directory).map_err(|e| {
            Error::internal(format!("media directory {}: {e}", directory.display()))
        })?;
        Ok(Arc::new(Self {
            server_name: config.server_name(),
            config: config.media.clone(),
            store,
            media: db.open_table(tables::MEDIA),
            pending: db.open_table(tables::MEDIA_PENDING),
            pending_by_user: db.open_table(tables::MEDIA_PENDING_BY_USER),
            by_user: db.open_table(tables::MEDIA_BY_USER),
            blobs: db.open_table(tables::MEDIA_BLOBS),
            thumbnails: db.open_table(tables::MEDIA_THUMBNAILS),
            previews: db.open_table(tables::MEDIA_PREVIEWS),
            write_lock: Mutex::new(()),
            uploaded: tokio::sync::watch::Sender::new(0),
            thumbnailer: thumbnail::Thumbnailer::new(config.media.max_image_pixels),
            previewer: preview::Previewer::new(&config.media)?,
            db,
        }))
    }

    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// Whether `server` is this server (only local media exists so far).
    pub fn is_local(&self, server: &ServerName) -> bool {
        server == self.server_name
    }

    fn mxc(&self, media_id: &str) -> OwnedMxcUri {
        OwnedMxcUri::from(format!("mxc://{}/{media_id}", self.server_name))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves a media id for `user` (`POST /_matrix/media/v1/create`). Blocking.
    pub fn create_pending(&self, user: &UserId) -> Result<(OwnedMxcUri, u64)> {
        let _guard = self.lock();
        let now = now_ms();
        let user_key = user.to_string();
        let mut batch = self.db.batch();
        let mut live = Vec::new();
        for ((_, media_id), expires) in self
            .pending_by_user
            .scan_prefix(&codec::prefix(&user_key))?
        {
            if expires <= now {
                // Expired reservations are dropped as their owner makes new ones.
                self.pending_by_user
                    .delete(&mut batch, &(user_key.clone(), media_id.clone()));
                self.pending
                    .delete(&mut batch, &(self.server_name.to_string(), media_id));
            } else {
                live.push(expires);
            }
        }
        if live.len() >= self.config.max_pending_uploads {
            self.db.write(batch)?;
            let retry = live
                .iter()
                .min()
                .map_or(0, |first| first.saturating_sub(now));
            return Err(Error::Matrix {
                status: StatusCode::TOO_MANY_REQUESTS,
                errcode: "M_LIMIT_EXCEEDED",
                message: format!(
                    "You have {} media ids waiting for uploads; upload to them or wait for them to expire",
                    live.len()
                ),
                extra: Some(serde_json::json!({ "retry_after_ms": retry })),
            });
        }
        let media_id = records::new_media_id();
        let expires_ms = now + self.config.unused_expiry_secs.saturating_mul(1000);
        let key = (self.server_name.to_string(), media_id.clone());
        self.pending.put(
            &mut batch,
            &key,
            &PendingRecord {
                user: user_key.clone(),
                expires_ms,
            },
        );
        self.pending_by_user
            .put(&mut batch, &(user_key, media_id.clone()), &expires_ms);
        self.db.write(batch)?;
        Ok((self.mxc(&media_id), expires_ms))
    }

    /// Checks that `user` may upload to the reserved id now, before any byte is read. Blocking.
    pub fn check_reserved(&self, user: &UserId, server: &ServerName, media_id: &str) -> Result<()> {
        if !self.is_local(server) || !is_valid_media_id(media_id) {
            return Err(Error::not_found("No such media id on this server"));
        }
        let key = (server.to_string(), media_id.to_owned());
        self.check_reserved_key(user, &key)
    }

    fn check_reserved_key(&self, user: &UserId, key: &(String, String)) -> Result<()> {
        if self.media.contains(key)? {
            return Err(media_error(
                StatusCode::CONFLICT,
                "M_CANNOT_OVERWRITE_MEDIA",
                "This media id already has its content",
            ));
        }
        match self.pending.get(key)? {
            Some(pending) if pending.expires_ms <= now_ms() => {
                Err(Error::not_found("This media id expired before its upload"))
            }
            Some(pending) if pending.user != user.as_str() => Err(Error::forbidden(
                "Only the user who created this media id may upload to it",
            )),
            Some(_) => Ok(()),
            None => Err(Error::not_found("No such media id on this server")),
        }
    }

    /// Records a received file: places the blob, writes the record and counts it, all or
    /// nothing. Blocking.
    pub fn commit_upload(&self, temp: TempBlob, upload: NewUpload) -> Result<OwnedMxcUri> {
        let user = UserId::parse(&upload.uploader)
            .map_err(|e| Error::internal(format!("uploader id: {e}")))?;
        let _guard = self.lock();
        let media_id = match &upload.reserved_id {
            Some(id) => {
                // Checked again under the lock: two uploads to one id race until here.
                self.check_reserved_key(&user, &(self.server_name.to_string(), id.clone()))?;
                id.clone()
            }
            None => records::new_media_id(),
        };
        let sha256 = temp.sha256;
        let size = temp.size;
        self.store
            .place(temp)
            .map_err(|e| Error::internal(format!("placing an upload: {e}")))?;
        let key = (self.server_name.to_string(), media_id.clone());
        let mut blob = self.blobs.get(&sha256)?.unwrap_or_default();
        blob.size = size;
        blob.refs += 1;
        let record = MediaRecord {
            uploader: Some(upload.uploader.clone()),
            size,
            content_type: upload.content_type,
            filename: upload.filename,
            created_ms: now_ms(),
            sha256: hex::encode(sha256),
            authenticated: self.config.enable_authenticated_media,
        };
        let mut batch = self.db.batch();
        self.media.put(&mut batch, &key, &record);
        self.blobs.put(&mut batch, &sha256, &blob);
        self.by_user.put(
            &mut batch,
            &(upload.uploader.clone(), key.0.clone(), media_id.clone()),
            &true,
        );
        if upload.reserved_id.is_some() {
            self.pending.delete(&mut batch, &key);
            self.pending_by_user
                .delete(&mut batch, &(upload.uploader, media_id.clone()));
        }
        self.db.write(batch)?;
        if upload.reserved_id.is_some() {
            self.uploaded.send_modify(|n| *n += 1);
        }
        Ok(self.mxc(&media_id))
    }

    /// Where a media id stands. Blocking.
    pub fn lookup(&self, server: &ServerName, media_id: &str) -> Result<Lookup> {
        if !self.is_local(server) || !is_valid_media_id(media_id) {
            return Ok(Lookup::NotFound);
        }
        let key = (server.to_string(), media_id.to_owned());
        if let Some(record) = self.media.get(&key)? {
            return Ok(Lookup::Found(record));
        }
        Ok(match self.pending.get(&key)? {
            Some(pending) if pending.expires_ms > now_ms() => Lookup::Pending,
            _ => Lookup::NotFound,
        })
    }

    /// The record of a media id and its file, waiting up to `timeout` for a reserved id's
    /// upload (then `504 M_NOT_YET_UPLOADED`).
    pub async fn wait_for(
        self: &Arc<Self>,
        server: &ServerName,
        media_id: &str,
        timeout: Duration,
    ) -> Result<(MediaRecord, PathBuf)> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_UPLOAD_WAIT);
        // Subscribed before looking, so an upload landing in between still wakes us.
        let mut uploads = self.uploaded.subscribe();
        loop {
            let (this, server_owned, id) = (self.clone(), server.to_owned(), media_id.to_owned());
            let lookup = tokio::task::spawn_blocking(move || this.lookup(&server_owned, &id))
                .await
                .map_err(|e| Error::internal(format!("media lookup: {e}")))??;
            match lookup {
                Lookup::Found(record) => {
                    let digest = record
                        .digest()
                        .ok_or_else(|| Error::internal("media record with a bad digest"))?;
                    let path = self.store.blob_path(&digest);
                    return Ok((record, path));
                }
                Lookup::NotFound => return Err(Error::not_found("Media not found")),
                Lookup::Pending => {
                    let woke = tokio::time::timeout_at(deadline, uploads.changed()).await;
                    if !matches!(woke, Ok(Ok(()))) {
                        return Err(media_error(
                            StatusCode::GATEWAY_TIMEOUT,
                            "M_NOT_YET_UPLOADED",
                            "The media has not been uploaded yet",
                        ));
                    }
                }
            }
        }
    }

    /// Deletes one media: its record, and its file and thumbnails when no other record names
    /// them. Returns whether it existed. Blocking.
    pub fn delete(&self, server: &ServerName, media_id: &str) -> Result<bool> {
        let _guard = self.lock();
        let key = (server.to_string(), media_id.to_owned());
        let Some(record) = self.media.get(&key)? else {
            return Ok(false);
        };
        let digest = record
            .digest()
            .ok_or_else(|| Error::internal("media record with a bad digest"))?;
        let mut batch = self.db.batch();
        self.media.delete(&mut batch, &key);
        if let Some(uploader) = &record.uploader {
            self.by_user.delete(
                &mut batch,
                &(uploader.clone(), key.0.clone(), key.1.clone()),
            );
        }
        let mut blob = self.blobs.get(&digest)?.unwrap_or_default();
        blob.refs = blob.refs.saturating_sub(1);
        let last = blob.refs == 0;
        if last {
            self.blobs.delete(&mut batch, &digest);
            for (thumb_key, _) in self
                .thumbnails
                .scan_prefix(&codec::prefix(&record.sha256))?
            {
                self.thumbnails.delete(&mut batch, &thumb_key);
            }
        } else {
            self.blobs.put(&mut batch, &digest, &blob);
        }
        self.db.write(batch)?;
        if last {
            // After the records: a crash in between leaves an unnamed file, never a record
            // naming a missing one.
            self.store
                .remove(&digest)
                .map_err(|e| Error::internal(format!("removing a media file: {e}")))?;
        }
        Ok(true)
    }

    /// Deletes every media `user` uploaded; returns how many. Blocking.
    pub fn delete_user_media(&self, user: &UserId) -> Result<usize> {
        let owned = self.by_user.scan_prefix(&codec::prefix(user.as_str()))?;
        let mut deleted = 0;
        for ((_, origin, media_id), _) in owned {
            let server = ServerName::parse(&origin)
                .map_err(|e| Error::internal(format!("stored media origin: {e}")))?;
            deleted += usize::from(self.delete(&server, &media_id)?);
        }
        Ok(deleted)
    }

    /// How many media records a blob has (tests and the admin CLI).
    pub fn blob_refs(&self, sha256: &[u8; 32]) -> Result<u64> {
        Ok(self.blobs.get(sha256)?.map_or(0, |b| b.refs))
    }
}
