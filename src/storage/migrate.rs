//! Migrations between on-disk layouts, run at open before anything reads the tables. Each step
//! rewrites what changed in one atomic batch together with the new schema version, so a crash
//! mid-migration leaves the old layout, and the next start runs the step again.

use super::{Cf, Db, SCHEMA_VERSION_KEY, StorageResult, Table};

/// Brings a database at layout `found` up to [`super::SCHEMA_VERSION`].
pub(super) fn run(db: &Db, found: u64) -> StorageResult<()> {
    let mut version = found;
    while version < super::SCHEMA_VERSION {
        match version {
            1 => short_state_keys_by_pair(db)?,
            2 => to_device_transaction_ids_apart(db)?,
            _ => unreachable_version(version)?,
        }
        version += 1;
        tracing::info!(version, "database migrated");
    }
    Ok(())
}

fn unreachable_version(version: u64) -> StorageResult<()> {
    Err(super::StorageError::Corrupt {
        table: "meta",
        detail: format!("no migration from schema version {version}"),
    })
}

/// 1 → 2: `state_key_short_ids` was keyed by `type + U+00FF + state key`, which two different
/// pairs can share (`("aÿ", "b")` and `("a", "ÿb")`). It is now keyed by the pair joined with
/// the byte 0xFF, which UTF-8 never contains. The reverse table (`state_keys_by_short`) always
/// held the pairs themselves, so the index is rebuilt from it.
fn short_state_keys_by_pair(db: &Db) -> StorageResult<()> {
    let old: Table<String, u64> = db.table(Cf::StateKeyShortIds);
    let new: Table<(String, String), u64> = db.table(Cf::StateKeyShortIds);
    let by_short: Table<u64, (String, String)> = db.table(Cf::StateKeysByShort);
    let mut batch = db.batch();
    // Deletes first: within a batch the later write wins. Old keys never contain the byte
    // 0xFF and new ones always do, so no new key is deleted.
    for (key, _) in old.scan_all()? {
        old.delete(&mut batch, &key);
    }
    for (short, pair) in by_short.scan_all()? {
        new.put(&mut batch, &pair, &short);
    }
    batch
        .inner
        .put_cf(db.cf(Cf::Meta), SCHEMA_VERSION_KEY, 2u64.to_be_bytes());
    db.write(batch)
}

/// 2 → 3: send-to-device transaction ids (value `true`) shared `transaction_ids` with event
/// transaction ids (value: an event id), so one column family held two value types. They move
/// to `to_device_transaction_ids`, keys unchanged.
fn to_device_transaction_ids_apart(db: &Db) -> StorageResult<()> {
    let shared: Table<(String, String), serde_json::Value> = db.table(Cf::TransactionIds);
    let to_device: Table<(String, String), bool> = db.table(Cf::ToDeviceTransactionIds);
    let mut batch = db.batch();
    for (key, value) in shared.scan_all()? {
        if value == serde_json::Value::Bool(true) {
            shared.delete(&mut batch, &key);
            to_device.put(&mut batch, &key, &true);
        }
    }
    batch
        .inner
        .put_cf(db.cf(Cf::Meta), SCHEMA_VERSION_KEY, 3u64.to_be_bytes());
    db.write(batch)
}
