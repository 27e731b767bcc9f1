//! Abuse reports about events, rooms and users, stored for the server's admins
//! (`hearth reports` lists them).

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    storage::{Db, Table, tables},
    util::now_millis,
};

/// One report (key: stream position).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub reporter: OwnedUserId,
    pub room_id: Option<OwnedRoomId>,
    pub event_id: Option<OwnedEventId>,
    pub user_id: Option<OwnedUserId>,
    pub reason: Option<String>,
    pub received_ts: u64,
}

/// Largest reason kept, in bytes (longer ones are cut).
const MAX_REASON_BYTES: usize = 4096;

/// Owns the `reports` table.
pub struct ReportService {
    db: Db,
    reports: Table<u64, Report>,
}

impl ReportService {
    pub fn new(db: Db) -> Self {
        Self {
            reports: db.open_table(tables::REPORTS),
            db,
        }
    }

    /// Stores a report.
    pub fn file(
        &self,
        reporter: OwnedUserId,
        room_id: Option<OwnedRoomId>,
        event_id: Option<OwnedEventId>,
        user_id: Option<OwnedUserId>,
        reason: Option<String>,
    ) -> Result<()> {
        let reason = reason.map(|mut r| {
            if r.len() > MAX_REASON_BYTES {
                let mut cut = MAX_REASON_BYTES;
                while !r.is_char_boundary(cut) {
                    cut -= 1;
                }
                r.truncate(cut);
            }
            r
        });
        let report = Report {
            reporter,
            room_id,
            event_id,
            user_id,
            reason,
            received_ts: now_millis(),
        };
        let key = self.db.next_count()?;
        let mut batch = self.db.batch();
        self.reports.put(&mut batch, &key, &report);
        self.db.write(batch)?;
        Ok(())
    }

    /// Every report, oldest first.
    pub fn list(&self) -> Result<Vec<Report>> {
        Ok(self
            .reports
            .scan_all()?
            .into_iter()
            .map(|(_, report)| report)
            .collect())
    }
}
