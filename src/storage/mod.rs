//! Storage: the only code that knows RocksDB. A [`Db`] with one column family per table
//! (see [`schema`]), typed [`Table`]s, and atomic [`Batch`]es.

pub mod codec;
pub mod keys;
mod migrate;
pub mod schema;

use std::{marker::PhantomData, path::Path, sync::Arc};

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Options, WriteOptions};
use serde::{Serialize, de::DeserializeOwned};

pub use codec::KeyCodec;
pub use schema::{Cf, SCHEMA_VERSION, TableDef, tables};

use crate::config::StorageConfig;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "the database at {0} is in use by another hearth process; stop it first, or talk to it \
         through its admin socket"
    )]
    InUse(String),
    #[error(
        "the database at {path} has schema version {found}, newer than this hearth understands \
         ({supported}); run a newer hearth"
    )]
    TooNew {
        path: String,
        found: u64,
        supported: u64,
    },
    #[error("{0}")]
    Io(String),
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt value in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The open database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    rocks: DB,
    write_options: WriteOptions,
    counter: std::sync::Mutex<Counter>,
    /// Stream positions handed out whose writes have not landed yet.
    in_flight: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

/// The global monotonic counter (stream positions and short ids). Numbers are reserved on disk
/// in blocks, so a restart continues above anything ever handed out without a write per number.
struct Counter {
    next: u64,
    reserved_until: u64,
}

const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
const COUNTER_KEY: &[u8] = b"counter_reserved_until";
const COUNTER_BLOCK: u64 = 1000;

impl Db {
    /// Opens (or creates) the database at `path`, creating missing column families and checking
    /// the schema version.
    pub fn open(path: &Path, config: &StorageConfig) -> StorageResult<Db> {
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError::Io(format!("cannot create {}: {e}", path.display())))?;
        let cache = Cache::new_lru_cache(config.cache_size_mib.max(1) * 1024 * 1024);
        let mut table_options = BlockBasedOptions::default();
        table_options.set_block_cache(&cache);
        table_options.set_bloom_filter(10.0, false);
        let mut cf_options = Options::default();
        cf_options.set_block_based_table_factory(&table_options);
        cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);

        let mut db_options = cf_options.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(3);
        // One memory budget for the memtables of all column families together; without it
        // each of the ~30 tables may grow its own 64 MiB write buffer.
        db_options.set_db_write_buffer_size(config.write_buffer_mib.max(1) * 1024 * 1024);

        let descriptors = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options.clone()));
        let rocks = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|e| {
            let text = e.to_string();
            if text.contains("lock") || text.contains("LOCK") {
                StorageError::InUse(path.display().to_string())
            } else {
                StorageError::Rocks(e)
            }
        })?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(config.sync_writes);
        #[allow(clippy::expect_used, reason = "every column family is created at open")]
        let meta = rocks
            .cf_handle(Cf::Meta.name())
            .expect("every column family is created at open");
        let reserved = match rocks.get_cf(meta, COUNTER_KEY)? {
            Some(bytes) => u64::decode(&bytes).ok_or_else(|| StorageError::Corrupt {
                table: "meta",
                detail: "counter is not a u64".into(),
            })?,
            None => 0,
        };
        let counter = std::sync::Mutex::new(Counter {
            next: reserved + 1,
            reserved_until: reserved,
        });
        let db = Db {
            inner: Arc::new(DbInner {
                rocks,
                write_options,
                counter,
                in_flight: Default::default(),
            }),
        };
        db.check_schema_version(path)?;
        Ok(db)
    }

    /// The next number of the global counter: strictly greater than every number returned
    /// before, in this process or an earlier one.
    pub fn next_count(&self) -> StorageResult<u64> {
        let mut counter = self.inner.counter.lock().unwrap_or_else(|e| e.into_inner());
        if counter.next > counter.reserved_until {
            let until = counter.next + COUNTER_BLOCK;
            self.inner.rocks.put_cf_opt(
                self.cf(Cf::Meta),
                COUNTER_KEY,
                until.to_be_bytes(),
                &self.inner.write_options,
            )?;
            counter.reserved_until = until;
        }
        let value = counter.next;
        counter.next += 1;
        Ok(value)
    }

    /// A new stream position for a write that readers must see in order. The position counts
    /// as in flight until the returned guard is dropped (after the write).
    pub fn next_stream_position(&self) -> StorageResult<StreamPosition> {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let position = self.next_count()?;
        in_flight.insert(position);
        Ok(StreamPosition {
            db: self.clone(),
            position,
        })
    }

    /// The highest stream position below which every write has landed: a sync token. Readers
    /// that stop here never skip a write that lands later with a smaller position.
    pub fn stream_watermark(&self) -> u64 {
        let in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match in_flight.first() {
            Some(oldest) => oldest - 1,
            None => self.current_count(),
        }
    }

    /// The highest number handed out so far (0 if none).
    pub fn current_count(&self) -> u64 {
        self.inner
            .counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next
            - 1
    }

    fn check_schema_version(&self, path: &Path) -> StorageResult<()> {
        let meta = self.cf(Cf::Meta);
        let stored = self.inner.rocks.get_cf(meta, SCHEMA_VERSION_KEY)?;
        match stored {
            None => {
                // A fresh database: stamp it with the current layout.
                self.inner.rocks.put_cf_opt(
                    meta,
                    SCHEMA_VERSION_KEY,
                    SCHEMA_VERSION.to_be_bytes(),
                    &self.inner.write_options,
                )?;
            }
            Some(bytes) => {
                let found = u64::decode(&bytes).ok_or_else(|| StorageError::Corrupt {
                    table: "meta",
                    detail: "schema_version is not a u64".into(),
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StorageError::TooNew {
                        path: path.display().to_string(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    migrate::run(self, found)?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::expect_used, reason = "every column family is created at open")]
    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.inner
            .rocks
            .cf_handle(cf.name())
            .expect("every column family is created at open")
    }

    /// A table of the catalogue ([`schema::tables`]), typed by its declaration.
    pub fn open_table<K: KeyCodec, V: Serialize + DeserializeOwned>(
        &self,
        table: schema::TableDef<K, V>,
    ) -> Table<K, V> {
        self.table(table.cf)
    }

    /// A view of one column family with types of the caller's choosing: for migrations, which
    /// read old layouts, and storage's own tests.
    fn table<K: KeyCodec, V: Serialize + DeserializeOwned>(&self, cf: Cf) -> Table<K, V> {
        Table {
            db: self.clone(),
            cf,
            _types: PhantomData,
        }
    }

    /// Starts an atomic batch of writes.
    pub fn batch(&self) -> Batch {
        Batch {
            inner: rocksdb::WriteBatch::default(),
            positions: Vec::new(),
        }
    }

    /// Commits a batch: all of its writes land, or none.
    pub fn write(&self, batch: Batch) -> StorageResult<()> {
        let Batch { inner, positions } = batch;
        self.inner
            .rocks
            .write_opt(inner, &self.inner.write_options)?;
        drop(positions);
        Ok(())
    }

    /// Makes every write durable: syncs the write-ahead log (used at shutdown).
    pub fn flush(&self) -> StorageResult<()> {
        // The write-ahead log holds every acknowledged write (what the crash test proves);
        // syncing it is all durability needs. Memtables are not flushed here: with ~40 tables
        // that is one SST file and fsync each, seconds on a busy disk, and the next start
        // replays the (bounded) log instead.
        self.inner.rocks.flush_wal(true)?;
        Ok(())
    }
}

/// A stream position in flight; dropping it (after the write, or on failure) releases it.
pub struct StreamPosition {
    db: Db,
    pub position: u64,
}

impl Drop for StreamPosition {
    fn drop(&mut self) {
        self.db
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.position);
    }
}

/// A set of writes committed together by [`Db::write`].
pub struct Batch {
    inner: rocksdb::WriteBatch,
    /// Stream positions of rows in this batch, released once it has landed (or is dropped).
    positions: Vec<StreamPosition>,
}

impl Batch {
    /// A new stream position for a row written in this batch, held until the batch lands: code
    /// that adds to a batch another one writes (hooks) can still take positions safely.
    pub fn stream_position(&mut self, db: &Db) -> StorageResult<u64> {
        let position = db.next_stream_position()?;
        let value = position.position;
        self.positions.push(position);
        Ok(value)
    }
}

/// A table value encoded once and written under many keys ([`Table::put_encoded`]).
pub struct Encoded<V> {
    bytes: Vec<u8>,
    _type: PhantomData<fn() -> V>,
}

impl<V: Serialize> Encoded<V> {
    #[allow(
        clippy::expect_used,
        reason = "record types are plain structs with string map keys: serializing cannot fail"
    )]
    pub fn new(value: &V) -> Self {
        Encoded {
            bytes: serde_json::to_vec(value).expect("records always serialize"),
            _type: PhantomData,
        }
    }
}

/// A column family seen as a map from `K` to `V` (values are JSON).
pub struct Table<K, V> {
    db: Db,
    cf: Cf,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            db: self.db.clone(),
            cf: self.cf,
            _types: PhantomData,
        }
    }
}

impl<K: KeyCodec, V: Serialize + DeserializeOwned> Table<K, V> {
    fn decode_value(&self, bytes: &[u8]) -> StorageResult<V> {
        serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
            table: self.cf.name(),
            detail: e.to_string(),
        })
    }

    #[allow(
        clippy::expect_used,
        reason = "record types are plain structs with string map keys: serializing cannot fail"
    )]
    fn encode_value(value: &V) -> Vec<u8> {
        serde_json::to_vec(value).expect("records always serialize")
    }

    /// Reads one value.
    pub fn get(&self, key: &K) -> StorageResult<Option<V>> {
        let rocks = &self.db.inner.rocks;
        match rocks.get_pinned_cf(self.db.cf(self.cf), key.encode())? {
            Some(bytes) => Ok(Some(self.decode_value(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &K) -> StorageResult<bool> {
        Ok(self
            .db
            .inner
            .rocks
            .get_pinned_cf(self.db.cf(self.cf), key.encode())?
            .is_some())
    }

    /// Adds a write of `key → value` to `batch`.
    pub fn put(&self, batch: &mut Batch, key: &K, value: &V) {
        batch
            .inner
            .put_cf(self.db.cf(self.cf), key.encode(), Self::encode_value(value));
    }

    /// Adds a write of `key → value` to `batch`, with the value already encoded.
    pub fn put_encoded(&self, batch: &mut Batch, key: &K, value: &Encoded<V>) {
        batch
            .inner
            .put_cf(self.db.cf(self.cf), key.encode(), &value.bytes);
    }

    /// Adds a deletion of `key` to `batch`.
    pub fn delete(&self, batch: &mut Batch, key: &K) {
        batch.inner.delete_cf(self.db.cf(self.cf), key.encode());
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> StorageResult<Vec<(K, V)>> {
        let rocks = &self.db.inner.rocks;
        let mut out = Vec::new();
        for item in rocks.prefix_iterator_cf(self.db.cf(self.cf), prefix) {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            let key = K::decode(&key).ok_or_else(|| StorageError::Corrupt {
                table: self.cf.name(),
                detail: "undecodable key".into(),
            })?;
            out.push((key, self.decode_value(&value)?));
        }
        Ok(out)
    }

    /// The first entry (in key order) whose key starts with `prefix`.
    pub fn first_with_prefix(&self, prefix: &[u8]) -> StorageResult<Option<(K, V)>> {
        let rocks = &self.db.inner.rocks;
        let Some(item) = rocks.prefix_iterator_cf(self.db.cf(self.cf), prefix).next() else {
            return Ok(None);
        };
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            return Ok(None);
        }
        let key = K::decode(&key).ok_or_else(|| StorageError::Corrupt {
            table: self.cf.name(),
            detail: "undecodable key".into(),
        })?;
        Ok(Some((key, self.decode_value(&value)?)))
    }

    /// Up to `limit` entries with `start <= key < end`, ascending, or descending when
    /// `backward` (then starting just below `end`).
    pub fn range(
        &self,
        start: &[u8],
        end: &[u8],
        backward: bool,
        limit: usize,
    ) -> StorageResult<Vec<(K, V)>> {
        self.iter_range(start, end, backward).take(limit).collect()
    }

    /// Entries with `start <= key < end`, ascending, or descending when `backward`, decoded
    /// one at a time: a caller that stops early never reads or decodes the rest.
    pub fn iter_range(
        &self,
        start: &[u8],
        end: &[u8],
        backward: bool,
    ) -> impl Iterator<Item = StorageResult<(K, V)>> + use<'_, K, V> {
        self.iter_range_raw(start, end, backward).map(move |item| {
            let (key, value) = item?;
            Ok((key, self.decode_value(&value)?))
        })
    }

    /// Like [`Table::iter_range`], with each value's stored JSON bytes undecoded, for callers
    /// that parse them into a type of their own. The bounds are copied: the iterator borrows
    /// only the table.
    pub fn iter_range_raw(
        &self,
        start: &[u8],
        end: &[u8],
        backward: bool,
    ) -> impl Iterator<Item = StorageResult<(K, Box<[u8]>)>> + use<'_, K, V> {
        use rocksdb::IteratorMode;
        // An inverted range is empty (RocksDB wants lower <= upper).
        let end = end.max(start);
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_lower_bound(start.to_vec());
        options.set_iterate_upper_bound(end.to_vec());
        let mode = if backward {
            IteratorMode::End
        } else {
            IteratorMode::Start
        };
        let rocks = &self.db.inner.rocks;
        rocks
            .iterator_cf_opt(self.db.cf(self.cf), options, mode)
            .map(move |item| {
                let (key, value) = item?;
                let key = K::decode(&key).ok_or_else(|| StorageError::Corrupt {
                    table: self.cf.name(),
                    detail: "undecodable key".into(),
                })?;
                Ok((key, value))
            })
    }

    /// Every key of the table, in key order, without decoding the values.
    pub fn keys(&self) -> impl Iterator<Item = StorageResult<K>> + use<'_, K, V> {
        let rocks = &self.db.inner.rocks;
        rocks
            .iterator_cf(self.db.cf(self.cf), rocksdb::IteratorMode::Start)
            .map(move |item| {
                let (key, _) = item?;
                K::decode(&key).ok_or_else(|| StorageError::Corrupt {
                    table: self.cf.name(),
                    detail: "undecodable key".into(),
                })
            })
    }

    /// Every entry of the table, in key order.
    pub fn scan_all(&self) -> StorageResult<Vec<(K, V)>> {
        self.scan_prefix(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_atomic_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::default();
        {
            let db = Db::open(dir.path(), &config).unwrap();
            let users: Table<String, u32> = db.table(Cf::Users);
            let mut batch = db.batch();
            users.put(&mut batch, &"a".into(), &1);
            users.put(&mut batch, &"b".into(), &2);
            assert_eq!(
                users.get(&"a".into()).unwrap(),
                None,
                "nothing visible before commit"
            );
            db.write(batch).unwrap();
            db.flush().unwrap();
        }
        let db = Db::open(dir.path(), &config).unwrap();
        let users: Table<String, u32> = db.table(Cf::Users);
        assert_eq!(
            users.scan_all().unwrap(),
            vec![("a".into(), 1), ("b".into(), 2)]
        );
    }

    #[test]
    fn counter_grows_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
            let first = db.next_count().unwrap();
            let second = db.next_count().unwrap();
            assert!(second > first);
            second
        };
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        assert!(db.next_count().unwrap() > last);
    }

    #[test]
    fn the_watermark_never_passes_a_write_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let first = db.next_stream_position().unwrap();
        let second = db.next_stream_position().unwrap();
        assert!(
            db.stream_watermark() < first.position,
            "nothing past an unfinished write"
        );
        drop(second);
        assert!(
            db.stream_watermark() < first.position,
            "a later write landing first does not help"
        );
        let first_position = first.position;
        drop(first);
        assert!(db.stream_watermark() > first_position, "both landed");
    }

    #[test]
    fn range_walks_both_ways_with_exclusive_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let pdus: Table<(u64, u64), u32> = db.table(Cf::Pdus);
        let mut batch = db.batch();
        for count in 1..=5 {
            pdus.put(&mut batch, &(7, count), &(count as u32));
            pdus.put(&mut batch, &(8, count), &0);
        }
        db.write(batch).unwrap();
        let keys =
            |rows: Vec<((u64, u64), u32)>| rows.into_iter().map(|(k, _)| k.1).collect::<Vec<_>>();
        let start = (7u64, 0u64).encode();
        let end = (7u64, 4u64).encode();
        assert_eq!(
            keys(pdus.range(&start, &end, false, 10).unwrap()),
            vec![1, 2, 3]
        );
        assert_eq!(keys(pdus.range(&start, &end, true, 2).unwrap()), vec![3, 2]);
        let room_end = (7u64, u64::MAX).encode();
        assert_eq!(
            keys(pdus.range(&start, &room_end, true, 10).unwrap()),
            vec![5, 4, 3, 2, 1]
        );
    }

    #[test]
    fn second_open_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let second = Db::open(dir.path(), &StorageConfig::default());
        assert!(
            matches!(second, Err(StorageError::InUse(_))),
            "{:?}",
            second.err()
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
            db.inner
                .rocks
                .put_cf(
                    db.cf(Cf::Meta),
                    SCHEMA_VERSION_KEY,
                    (SCHEMA_VERSION + 1).to_be_bytes(),
                )
                .unwrap();
        }
        let reopened = Db::open(dir.path(), &StorageConfig::default());
        assert!(matches!(reopened, Err(StorageError::TooNew { .. })));
    }
}
