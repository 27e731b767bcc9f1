//! The blob store: media files on disk, named by the SHA-256 of their bytes, so identical
//! uploads share one file.
//!
//! Layout under `media.path`: `ab/cd/abcd…` (the hex digest, fanned out by its first two bytes
//! so no directory grows huge), thumbnails beside it in `ab/cd/abcd….thumbs/`, and `tmp/` for
//! files being received.
//!
//! Why a crash never leaves a record pointing at a partial file: bytes go to a temp file that
//! is fsynced, then renamed to its final name (atomic on one filesystem) and the directory
//! fsynced; only after that does the caller write the metadata record. A crash before the
//! rename leaves a temp file (swept at the next start); after it, at worst a blob no record
//! names yet.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// What the receiving thread is sent.
enum Chunk {
    Data(Bytes),
    /// Every byte arrived: fsync and keep the file.
    Done,
}

/// Chunks in flight between the request and the writing thread. Bounded, so a fast client
/// with a slow disk waits instead of filling memory.
const CHANNEL_CHUNKS: usize = 8;

/// The directory of media files.
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store at `root` and removes temp files a crash left behind.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let path = entry?.path();
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "stale media temp file not removed");
            }
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(&hex[2..4]).join(hex)
    }

    /// The directory of a blob's cached thumbnails.
    pub fn thumbnail_dir(&self, sha256: &[u8; 32]) -> PathBuf {
        let mut path = self.blob_path(sha256).into_os_string();
        path.push(".thumbs");
        PathBuf::from(path)
    }

    /// A fresh temp file name (random, so concurrent uploads never share one).
    fn temp_path(&self) -> PathBuf {
        use rand::Rng;
        let name: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        self.root.join("tmp").join(name)
    }

    /// Starts receiving a file: bytes are hashed and written on a blocking thread.
    pub fn start_write(&self) -> BlobWriter {
        let path = self.temp_path();
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let task = tokio::task::spawn_blocking({
            let path = path.clone();
            move || receive(&path, rx)
        });
        BlobWriter { tx, task }
    }

    /// Receives `bytes` whole (small files the server makes itself: preview images).
    pub async fn write_all(&self, bytes: Bytes) -> std::io::Result<TempBlob> {
        let mut writer = self.start_write();
        writer.write(bytes).await?;
        writer.finish().await
    }

    /// Moves a received file to its content address. When the blob exists already (the same
    /// bytes uploaded before), the temp file is dropped instead. Blocking.
    pub fn place(&self, mut temp: TempBlob) -> std::io::Result<()> {
        let target = self.blob_path(&temp.sha256);
        if target.exists() {
            return Ok(()); // `temp` removes its file when dropped
        }
        let dir = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        std::fs::rename(&temp.path, &target)?;
        temp.placed = true;
        sync_dir(dir)
    }

    /// Removes a blob and its thumbnails (its last record is gone). Blocking.
    pub fn remove(&self, sha256: &[u8; 32]) -> std::io::Result<()> {
        match std::fs::remove_file(self.blob_path(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_dir_all(self.thumbnail_dir(sha256)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes a thumbnail atomically (temp file, fsync, rename) into its blob's directory.
    pub fn write_thumbnail(
        &self,
        sha256: &[u8; 32],
        name: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.thumbnail_dir(sha256);
        std::fs::create_dir_all(&dir)?;
        let temp = self.temp_path();
        let result = (|| {
            let mut file = std::fs::File::create_new(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, dir.join(name))?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Where a cached thumbnail lives.
    pub fn thumbnail_path(&self, sha256: &[u8; 32], name: &str) -> PathBuf {
        self.thumbnail_dir(sha256).join(name)
    }
}

/// Makes a rename durable: the directory entry itself is fsynced.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The blocking side of a [`BlobWriter`]: writes and hashes until `Done`; if the sender goes
/// away first (the client disconnected, the body was cut short or too large), removes the
/// partial file.
fn receive(path: &Path, mut rx: mpsc::Receiver<Chunk>) -> std::io::Result<TempBlob> {
    let file = std::fs::File::create_new(path)?;
    let mut temp = TempBlob {
        path: path.to_owned(),
        sha256: [0; 32],
        size: 0,
        placed: false,
    };
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    loop {
        match rx.blocking_recv() {
            Some(Chunk::Data(bytes)) => {
                hasher.update(&bytes);
                out.write_all(&bytes)?;
                temp.size += bytes.len() as u64;
            }
            Some(Chunk::Done) => break,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "upload ended before its last byte",
                ));
            }
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    temp.sha256 = hasher.finalize().into();
    Ok(temp)
}

/// Receives one file. Dropping it unfinished removes what was written.
pub struct BlobWriter {
    tx: mpsc::Sender<Chunk>,
    task: tokio::task::JoinHandle<std::io::Result<TempBlob>>,
}

impl BlobWriter {
    /// Hands a chunk to the writing thread (waits while the thread is behind).
    pub async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        if self.tx.send(Chunk::Data(bytes)).await.is_err() {
            // The thread stopped early: its error says why.
            return Err(self.thread_error().await);
        }
        Ok(())
    }

    async fn thread_error(&mut self) -> std::io::Error {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => std::io::Error::other("media writer stopped early"),
            Err(e) => std::io::Error::other(format!("media writer: {e}")),
        }
    }

    /// Every byte was sent: the file is fsynced and returned, not yet placed.
    pub async fn finish(self) -> std::io::Result<TempBlob> {
        let _ = self.tx.send(Chunk::Done).await;
        drop(self.tx);
        self.task
            .await
            .map_err(|e| std::io::Error::other(format!("media writer: {e}")))?
    }
}

/// A received, fsynced file in `tmp/`. Removed when dropped unless it was placed.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    pub sha256: [u8; 32],
    pub size: u64,
    placed: bool,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identical_files_share_one_blob_and_partial_ones_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let first = store.write_all(Bytes::from_static(b"hello")).await.unwrap();
        let second = store.write_all(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(first.sha256, second.sha256);
        assert_eq!(first.size, 5);
        let sha = first.sha256;
        store.place(first).unwrap();
        store.place(second).unwrap();
        assert_eq!(std::fs::read(store.blob_path(&sha)).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let mut partial = store.start_write();
        partial.write(Bytes::from_static(b"half")).await.unwrap();
        drop(partial);
        for _ in 0..100 {
            if std::fs::read_dir(dir.path().join("tmp")).unwrap().count() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        store.remove(&sha).unwrap();
        assert!(!store.blob_path(&sha).exists());
    }
}
