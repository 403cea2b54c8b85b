//! The change stream replayed from the log: the records a subscriber would
//! have received after a timestamp, for a reader that restarts (omen-sync
//! resuming from its column store's durable watermark) or starts late.
//!
//! The log holds every commit after the latest checkpoint; a [`LogHold`]
//! keeps older records from removal for a reader that has not consumed
//! them yet (as a PostgreSQL replication slot does). Rows are decoded with
//! their table's schema: table ids are never reused (ALTER TABLE makes a
//! new one), so an id's schema comes from the catalog, the log's own
//! CREATE and ALTER records, or the schemas of dropped tables the store
//! keeps (in the manifest too) while the log still holds their drop.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::{Inner, Store};
use crate::changes::{Change, ChangeRecord, RowChange};
use crate::codec::row::decode_row;
use crate::error::{Error, Result};
use crate::schema::{TableId, TableSchema};
use crate::snapshots::Ts;
use crate::wal::{WalRecord, read_records};

/// Keeps the log's records after a timestamp from removal by checkpoints
/// while it lives (see [`Store::hold_log`]). The log grows while a hold
/// stays behind: advance it as the reader consumes. It does not keep the
/// store open.
#[derive(Debug)]
pub struct LogHold {
    inner: Weak<Inner>,
    /// 0 for an in-memory store (no log to hold).
    id: u64,
}

impl LogHold {
    /// Lets records at or before `ts` go with the next checkpoint (a hold
    /// never moves back).
    pub fn advance(&self, ts: Ts) {
        if let Some(inner) = self.inner.upgrade()
            && let Some(wal) = &inner.wal
        {
            wal.advance_hold(self.id, ts);
        }
    }
}

impl Drop for LogHold {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade()
            && let Some(wal) = &inner.wal
        {
            wal.release(self.id);
        }
    }
}

impl Store {
    /// Keeps every logged change after `after` until the hold is dropped
    /// or advanced, so [`Store::replay_changes`] can read them after later
    /// checkpoints. Fails with [`Error::LogTrimmed`] if the log no longer
    /// holds them all. Holds live in memory: a reader reopening the store
    /// takes its hold again (the log kept for the old one is still there,
    /// unless a checkpoint ran in between without it). An in-memory store
    /// has no log; its hold does nothing.
    pub fn hold_log(&self, after: Ts) -> Result<LogHold> {
        self.check_open()?;
        self.not_ahead(after)?;
        let id = match &self.inner.wal {
            Some(wal) => wal.hold(after)?,
            None => 0,
        };
        Ok(LogHold { inner: Arc::downgrade(&self.inner), id })
    }

    /// Calls `f` with each change record after `after` up to the newest
    /// committed timestamp, in commit order, as a subscriber received them
    /// (see [`Store::subscribe`]), until `f` returns false; returns the
    /// timestamp of the last record passed (`after` if none).
    ///
    /// Fails with [`Error::LogTrimmed`] if a checkpoint removed part of
    /// them (an in-memory store: unless nothing was committed after
    /// `after`), and with [`Error::AheadOfStore`] if `after` is past the
    /// newest commit (the reader saw records a crash lost: under
    /// [`crate::Durability::Full`] a subscriber receives a commit just
    /// before its sync, under the other modes before it is durable). The one record the log cannot give back is ALTER TABLE's:
    /// a subscriber receives the rewritten table's rows, the log holds only
    /// how to reshape them. Replay passes its drop and create records, then
    /// fails with [`Error::NotReplayable`] at it; the reader reloads that
    /// table from a snapshot and replays from the ALTER's timestamp.
    pub fn replay_changes(&self, after: Ts, mut f: impl FnMut(ChangeRecord) -> bool) -> Result<Ts> {
        self.check_open()?;
        let upto = self.current_ts();
        self.not_ahead(after)?;
        let Some(wal) = &self.inner.wal else {
            return if after == upto { Ok(after) } else { Err(Error::LogTrimmed { after, trimmed: upto }) };
        };
        // Before the segments: a checkpoint between the two may prune the
        // schema of a table dropped in a segment already opened.
        let mut schemas: HashMap<TableId, Arc<TableSchema>> = {
            let catalog = self.inner.catalog.read();
            let live = catalog.by_id.values().filter(|t| !t.is_index).map(|t| (t.id, Arc::clone(&t.schema)));
            let retired = catalog.retired.iter().map(|r| (r.id, Arc::new(r.schema.clone())));
            retired.chain(live).collect()
        };
        let segments = wal.segments_after(after)?;
        let mut last = after;
        read_records(segments, after, upto, |rec| {
            let ts = rec.ts();
            let records = match rec {
                WalRecord::Commit { writes, .. } => {
                    let mut rows = Vec::with_capacity(writes.len());
                    for w in writes {
                        let schema = schemas.get(&w.table).ok_or_else(|| Error::NotReplayable {
                            ts,
                            rewrote: None,
                            reason: format!("no schema is known for table {} (dropped before the log's start?)", w.table),
                        })?;
                        let op = w.op.change_op();
                        let row = w.op.into_row().map(|r| decode_row(&r, schema)).transpose()?;
                        rows.push(RowChange { table: w.table, op, key: w.key, row });
                    }
                    vec![ChangeRecord::new(ts, Change::Commit(rows))]
                }
                WalRecord::CreateTable { id, schema, .. } => {
                    let schema = Arc::new(schema);
                    schemas.insert(id, Arc::clone(&schema));
                    vec![ChangeRecord::new(ts, Change::CreateTable { id, schema })]
                }
                WalRecord::DropTable { id, .. } => vec![ChangeRecord::new(ts, Change::DropTable { id })],
                // Index DDL changes no rows: subscribers get an empty commit.
                WalRecord::CreateIndex { .. } | WalRecord::DropIndex { .. } => vec![ChangeRecord::new(ts, Change::Commit(Vec::new()))],
                WalRecord::AlterTable { id, new_id, reshape, .. } => {
                    let schema = Arc::new(reshape.schema);
                    schemas.insert(new_id, Arc::clone(&schema));
                    // An ALTER takes three timestamps, its record the last.
                    let dropped = ts.checked_sub(2).ok_or_else(|| Error::NotReplayable {
                        ts,
                        rewrote: None,
                        reason: "ALTER TABLE logged at a timestamp below 2".into(),
                    })?;
                    let records = [
                        ChangeRecord::new(dropped, Change::DropTable { id }),
                        ChangeRecord::new(dropped + 1, Change::CreateTable { id: new_id, schema }),
                    ];
                    for record in records.into_iter().filter(|r| r.ts > after) {
                        last = record.ts;
                        if !f(record) {
                            return Ok(false);
                        }
                    }
                    return Err(Error::NotReplayable {
                        ts,
                        rewrote: Some((id, new_id)),
                        reason: format!(
                            "ALTER TABLE rewrote table {id} as {new_id}; the log holds the reshape, not the rows: \
                             reload table {new_id} and replay from {ts}"
                        ),
                    });
                }
            };
            for record in records {
                last = record.ts;
                if !f(record) {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(last)
    }

    fn not_ahead(&self, after: Ts) -> Result<()> {
        let newest = self.current_ts();
        if after > newest {
            return Err(Error::AheadOfStore { after, newest });
        }
        Ok(())
    }
}
