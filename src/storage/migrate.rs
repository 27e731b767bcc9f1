//! Migrations between on-disk layouts, run at open before anything reads the tables. Each step
//! rewrites what changed in one atomic batch together with the new schema version, so a crash
//! mid-migration leaves the old layout, and the next start runs the step again.

use serde_json::value::RawValue;

use super::{
    Batch, Cf, Db, KeyCodec, SCHEMA_VERSION_KEY, StorageResult, Table,
    keys::{AccountDataKey, ReceiptKey, SearchKey, ToDeviceKey},
};

/// Brings a database at layout `found` up to [`super::SCHEMA_VERSION`].
pub(super) fn run(db: &Db, found: u64) -> StorageResult<()> {
    let mut version = found;
    while version < super::SCHEMA_VERSION {
        match version {
            1 => short_state_keys_by_pair(db)?,
            2 => to_device_transaction_ids_apart(db)?,
            3 => typed_keys_without_nul(db)?,
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

/// 3 → 4: four tables joined the inner parts of their keys with U+0000 inside one string part
/// (account data: `room\0type`; receipts: `user\0type\0thread`; to-device: `device\0` + 20
/// digits; search: `room\0token`). Their keys are now typed (`storage::keys`), every part
/// separated by the byte 0xFF, numbers 8 bytes big-endian. Values are copied unchanged. Each
/// row's old key is deleted and its new key written in the same batch: an old key never equals
/// a new one (a new key has more 0xFF bytes before its last part), so no write undoes another.
fn typed_keys_without_nul(db: &Db) -> StorageResult<()> {
    let mut batch = db.batch();
    rekey(db, &mut batch, Cf::AccountData, account_data_key)?;
    rekey(db, &mut batch, Cf::Receipts, receipt_key)?;
    rekey(db, &mut batch, Cf::ToDevice, to_device_key)?;
    rekey(db, &mut batch, Cf::SearchIndex, search_key)?;
    batch
        .inner
        .put_cf(db.cf(Cf::Meta), SCHEMA_VERSION_KEY, 4u64.to_be_bytes());
    db.write(batch)
}

/// Values copied byte for byte.
type Raw = Box<RawValue>;

/// Moves every row of `cf` from its old key (`Old`) to the key `new_key` makes of it, value
/// unchanged. A row it makes none of is one the old code could not have read back either:
/// dropped, and said so.
fn rekey<Old, New>(
    db: &Db,
    batch: &mut Batch,
    cf: Cf,
    new_key: impl Fn(&Old, &RawValue) -> Option<New>,
) -> StorageResult<()>
where
    Old: KeyCodec + std::fmt::Debug,
    New: KeyCodec,
{
    let old: Table<Old, Raw> = db.table(cf);
    let new: Table<New, Raw> = db.table(cf);
    for (key, value) in old.scan_all()? {
        old.delete(batch, &key);
        match new_key(&key, &value) {
            Some(rekeyed) => new.put(batch, &rekeyed, &value),
            None => tracing::warn!(
                table = cf.name(),
                ?key,
                "unreadable row dropped in migration"
            ),
        }
    }
    Ok(())
}

/// `user ‖ room\0type` (empty room: global) → [`AccountDataKey`]. The old reader split at the
/// first U+0000, and so does this.
fn account_data_key((user, scoped): &(String, String), _: &RawValue) -> Option<AccountDataKey> {
    let (room, kind) = scoped.split_once('\0')?;
    let room = Some(room.to_owned()).filter(|room| !room.is_empty());
    Some(AccountDataKey {
        user: user.clone(),
        room,
        kind: kind.to_owned(),
    })
}

/// `room ‖ user\0type\0thread` → [`ReceiptKey`]. The parts are taken from the stored record,
/// which holds each of them whole (a thread id could hold U+0000; the record is unambiguous).
fn receipt_key((room, _): &(String, String), value: &RawValue) -> Option<ReceiptKey> {
    #[derive(serde::Deserialize)]
    struct Parts {
        user_id: String,
        receipt_type: String,
        thread_id: Option<String>,
    }
    let parts: Parts = serde_json::from_str(value.get()).ok()?;
    Some(ReceiptKey {
        room: room.clone(),
        user: parts.user_id,
        receipt_type: parts.receipt_type,
        thread: parts.thread_id.unwrap_or_default(),
    })
}

/// `user ‖ device\0` + 20 digits → [`ToDeviceKey`]. The digits are last, so the device id is
/// everything before the last U+0000.
fn to_device_key((user, rest): &(String, String), _: &RawValue) -> Option<ToDeviceKey> {
    let (device, digits) = rest.rsplit_once('\0')?;
    let position = digits.parse().ok()?;
    Some(ToDeviceKey {
        user: user.clone(),
        device: device.to_owned(),
        position,
    })
}

/// `room\0token ‖ count` → [`SearchKey`]. Tokens are alphanumeric, so the first U+0000 ends the
/// room id.
fn search_key((scoped, count): &(String, u64), _: &RawValue) -> Option<SearchKey> {
    let (room, token) = scoped.split_once('\0')?;
    Some(SearchKey {
        room: room.to_owned(),
        token: token.to_owned(),
        count: *count,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Cf, Db, SCHEMA_VERSION, SCHEMA_VERSION_KEY, Table, tables};
    use crate::config::StorageConfig;

    /// Writes rows at schema `version`, as `write` lays them out, then stamps the version.
    fn database_at(version: u64, write: impl FnOnce(&Db, &mut super::Batch)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let mut batch = db.batch();
        write(&db, &mut batch);
        batch
            .inner
            .put_cf(db.cf(Cf::Meta), SCHEMA_VERSION_KEY, version.to_be_bytes());
        db.write(batch).unwrap();
        dir
    }

    fn schema_version(db: &Db) -> Option<Vec<u8>> {
        db.inner
            .rocks
            .get_cf(db.cf(Cf::Meta), SCHEMA_VERSION_KEY)
            .unwrap()
    }

    #[test]
    fn a_schema_1_database_gets_unambiguous_short_state_keys() {
        // The schema-1 layout: pairs joined with the character U+00FF.
        let dir = database_at(1, |db, batch| {
            let old: Table<String, u64> = db.table(Cf::StateKeyShortIds);
            let by_short: Table<u64, (String, String)> = db.table(Cf::StateKeysByShort);
            for (short, (kind, key)) in
                [(5u64, ("m.room.member", "@a:x")), (6, ("m.room.name", ""))]
            {
                old.put(batch, &format!("{kind}\u{ff}{key}"), &short);
                by_short.put(batch, &short, &(kind.to_owned(), key.to_owned()));
            }
        });
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        assert_eq!(
            schema_version(&db).as_deref(),
            Some(&SCHEMA_VERSION.to_be_bytes()[..])
        );
        let new: Table<(String, String), u64> = db.table(Cf::StateKeyShortIds);
        assert_eq!(
            new.scan_all().unwrap(),
            vec![
                (("m.room.member".to_owned(), "@a:x".to_owned()), 5),
                (("m.room.name".to_owned(), String::new()), 6),
            ],
            "old keys re-keyed, none left behind"
        );
    }

    #[test]
    fn a_schema_2_database_keeps_to_device_transaction_ids_apart() {
        let event_txn = ("@a:x".to_owned(), r#"["DEV","!r:x","t1"]"#.to_owned());
        let to_device_txn = (
            "@a:x".to_owned(),
            r#"["DEV","sendToDevice","t1"]"#.to_owned(),
        );
        let dir = database_at(2, |db, batch| {
            let shared: Table<(String, String), Value> = db.table(Cf::TransactionIds);
            shared.put(batch, &event_txn, &json!("$event"));
            shared.put(batch, &to_device_txn, &json!(true));
        });
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let events = db.open_table(tables::TRANSACTION_IDS);
        let to_device = db.open_table(tables::TO_DEVICE_TRANSACTION_IDS);
        assert_eq!(
            events.scan_all().unwrap(),
            vec![(event_txn, "$event".to_owned())]
        );
        assert_eq!(to_device.scan_all().unwrap(), vec![(to_device_txn, true)]);
    }

    /// The schema-3 layouts of account data, receipts, to-device messages and the search
    /// index: inner key parts joined with U+0000.
    fn schema_3_rows(db: &Db, batch: &mut super::Batch) {
        let pair = |cf| -> Table<(String, String), Value> { db.table(cf) };
        let (a, r) = ("@a:x".to_owned(), "!r:x".to_owned());
        let account_data = pair(Cf::AccountData);
        for (user, scoped, position) in [
            (&a, "\0m.direct", 5),
            (&a, "!r:x\0m.tag", 6),
            (&"@b:x".to_owned(), "\0m.direct", 7),
            // No U+0000: the old code never read it back; the migration drops it.
            (&a, "unreadable", 8),
        ] {
            let record = json!({ "content": { "n": position }, "position": position });
            account_data.put(batch, &(user.clone(), scoped.to_owned()), &record);
        }
        let receipts = pair(Cf::Receipts);
        for (receipt_type, thread, event, position) in [
            ("m.read", None, "$e1", 8),
            ("m.read", Some("$root"), "$e2", 9),
            ("m.read.private", None, "$e3", 10),
        ] {
            let key = format!("{a}\0{receipt_type}\0{}", thread.unwrap_or(""));
            let record = json!({
                "user_id": a, "receipt_type": receipt_type, "event_id": event,
                "thread_id": thread, "ts": 1, "position": position,
            });
            receipts.put(batch, &(r.clone(), key), &record);
        }
        let to_device = pair(Cf::ToDevice);
        for (device, position) in [("DEV", 300u64), ("DEV", 7), ("DEV2", 11)] {
            let message = json!({
                "sender": "@b:x", "type": "m.test", "content": { "n": position },
                "position": position,
            });
            let key = format!("{device}\0{position:020}");
            to_device.put(batch, &(a.clone(), key), &message);
        }
        let search: Table<(String, u64), Value> = db.table(Cf::SearchIndex);
        for (token, count, field) in [
            ("hello", 12u64, "content.body"),
            ("world", 12, "content.body"),
            ("hello", 20, "content.name"),
        ] {
            search.put(batch, &(format!("{r}\0{token}"), count), &json!([field]));
        }
    }

    #[test]
    fn a_schema_3_database_reads_back_through_typed_keys() {
        let dir = database_at(3, schema_3_rows);
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        assert_eq!(
            schema_version(&db).as_deref(),
            Some(&4u64.to_be_bytes()[..])
        );
        // Every row decodes as its new key type (an old key left behind would not), and the
        // unreadable account data row is gone.
        assert_eq!(
            db.open_table(tables::ACCOUNT_DATA)
                .scan_all()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(db.open_table(tables::RECEIPTS).scan_all().unwrap().len(), 3);
        assert_eq!(
            db.open_table(tables::TO_DEVICE).scan_all().unwrap().len(),
            3
        );
        assert_eq!(
            db.open_table(tables::SEARCH_INDEX)
                .scan_all()
                .unwrap()
                .len(),
            3
        );
        account_data_reads_back(&db);
        receipts_read_back(&db);
        to_device_reads_back(&db);
        search_index_reads_back(&db);
    }

    fn room() -> &'static ruma::RoomId {
        ruma::room_id!("!r:x")
    }

    fn alice() -> ruma::OwnedUserId {
        ruma::UserId::parse("@a:x").unwrap()
    }

    fn account_data_reads_back(db: &Db) {
        let account_data =
            crate::service::account_data::AccountDataService::new(db.clone(), Default::default());
        let a = alice();
        let get = |room, kind| account_data.get(&a, room, kind).unwrap();
        assert_eq!(get(None, "m.direct"), Some(json!({ "n": 5 })));
        assert_eq!(get(Some(room()), "m.tag"), Some(json!({ "n": 6 })));
        let changed = account_data.changed_since(&a, Some(5), u64::MAX).unwrap();
        let expected = (
            Some(room().to_owned()),
            "m.tag".to_owned(),
            json!({ "n": 6 }),
        );
        assert_eq!(changed, vec![expected]);
    }

    fn receipts_read_back(db: &Db) {
        let ephemeral = crate::service::ephemeral::EphemeralService::new(db.clone());
        let a = alice();
        let events = |thread| -> Vec<String> {
            let read = ephemeral.read_receipts(room(), &a, thread).unwrap();
            read.iter().map(ToString::to_string).collect()
        };
        assert_eq!(events(""), ["$e1", "$e3"]);
        assert_eq!(events("$root"), ["$e2"]);
        let receipts = ephemeral
            .receipt_event(room(), Some(8), &a)
            .unwrap()
            .unwrap();
        let content = &receipts["content"];
        assert_eq!(content["$e2"]["m.read"]["@a:x"]["thread_id"], "$root");
        assert!(content.get("$e1").is_none(), "only receipts after 8");
    }

    fn to_device_reads_back(db: &Db) {
        let to_device = crate::service::ephemeral::to_device::ToDeviceService::new(db.clone());
        let take = |device: &str, ack| -> Vec<Value> {
            let session = crate::service::users::sessions::Session {
                user_id: alice(),
                device_id: device.into(),
            };
            let messages = to_device.take_for_sync(&session, ack, u64::MAX).unwrap();
            messages.iter().map(|m| m["content"]["n"].clone()).collect()
        };
        assert_eq!(
            take("DEV", None),
            [json!(7), json!(300)],
            "in position order"
        );
        assert!(
            take("DEV", Some(300)).is_empty(),
            "acknowledged ones are deleted"
        );
        assert_eq!(take("DEV2", None), [json!(11)]);
    }

    fn search_index_reads_back(db: &Db) {
        let search = crate::service::rooms::search::SearchIndex::new(db);
        let found = |tokens: &[&str], keys: &[&str]| {
            let tokens = tokens.iter().map(|t| t.to_string()).collect();
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            search.matching_positions(room(), &tokens, &keys).unwrap()
        };
        assert_eq!(found(&["hello"], &["content.body"]), [12]);
        let both = found(&["hello"], &["content.body", "content.name"]);
        assert_eq!(both, [12, 20]);
        assert_eq!(found(&["hello", "world"], &["content.body"]), [12]);
    }
}
