//! HTAP snapshots: what an analytic read at timestamp T scans.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use omen_colstore::ColumnTable;
use omen_rowstore::{Change, ChangeRecord, TableId, Transaction, Ts, Value};

use crate::convert::rows_to_batch;
use crate::error::{Error, Result};
use crate::inbox::Unapplied;
use crate::worker::Syncer;

/// One table as of a transaction's snapshot T: the column store's versions
/// visible at min(T, W), minus the keys that commits in (W, T] and the
/// transaction's own writes changed, plus those keys' rows as of T and the
/// transaction.
#[derive(Debug)]
pub struct HtapSnapshot {
    ts: Ts,
    /// Where the column store is read: min(T, W).
    read_at: Ts,
    table: Arc<ColumnTable>,
    schema: SchemaRef,
    /// Keys changed after `read_at`: their column-store versions are masked.
    masked: Arc<HashSet<Vec<u8>>>,
    /// Those keys' rows where they have one, with their keys.
    overlay: Option<(RecordBatch, BinaryArray)>,
}

impl Syncer {
    /// Snapshots of `tables` as `txn` sees them, at its snapshot T.
    ///
    /// The column store is read as of min(T, W). Commits in (W, T], which
    /// the worker has received but not applied yet, are overlaid from the
    /// change stream: their keys mask older column versions and their rows
    /// are added. The transaction's own uncommitted writes go over both. So
    /// a read right after a commit sees it without waiting for sync. It
    /// waits until W >= T only when more commits wait than sync holds
    /// (`channel_capacity + max_batch_records`) or DDL is among them
    /// ([`crate::SyncMetrics`] counts both kinds).
    pub async fn snapshot(&self, txn: &Transaction, tables: &[TableId]) -> Result<HashMap<TableId, HtapSnapshot>> {
        let ts = txn.snapshot();
        let counters = &self.shared.counters;
        let (read_at, records) = match self.unapplied(ts)? {
            Unapplied::Applied => (ts, Vec::new()),
            Unapplied::Overlay { read_at, records } => {
                counters.overlaid.fetch_add(1, Ordering::Relaxed);
                (read_at, records)
            }
            Unapplied::Wait => {
                counters.waited.fetch_add(1, Ordering::Relaxed);
                self.wait_for(ts).await?;
                (ts, Vec::new())
            }
        };
        let mut out = HashMap::with_capacity(tables.len());
        for &id in tables {
            out.insert(id, self.table_snapshot(txn, id, read_at, &records)?);
        }
        Ok(out)
    }

    /// What the column store lacks for a snapshot at `ts`.
    fn unapplied(&self, ts: Ts) -> Result<Unapplied> {
        if let Some(msg) = &*self.shared.failure.lock() {
            return Err(Error::SyncFailed(msg.clone()));
        }
        let mut inbox = self.shared.inbox.lock();
        let (moved, _) = inbox.receive();
        if moved > 0 {
            // The worker may be waiting on the channel just emptied.
            self.shared.wake();
        }
        let w = *self.shared.watermark.borrow();
        Ok(inbox.pending(w, ts))
    }

    fn table_snapshot(&self, txn: &Transaction, id: TableId, read_at: Ts, records: &[Arc<ChangeRecord>]) -> Result<HtapSnapshot> {
        let (schema, arrow) = self.shared.schemas.read().get(&id).cloned().ok_or(omen_colstore::Error::UnknownTable(id))?;
        let table = self.shared.cols.table(id)?;
        // Each changed key's row as of T and the transaction (None: deleted).
        let mut latest: BTreeMap<&[u8], Option<&[Value]>> = BTreeMap::new();
        for record in records {
            if let Change::Commit(changes) = &record.change {
                for c in changes.iter().filter(|c| c.table == id) {
                    latest.insert(&c.key, c.row.as_deref());
                }
            }
        }
        latest.extend(txn.pending_writes(id));
        let masked = Arc::new(latest.keys().map(|k| k.to_vec()).collect());
        let (keys, rows): (Vec<&[u8]>, Vec<&[Value]>) = latest.into_iter().filter_map(|(k, row)| Some((k, row?))).unzip();
        let overlay = match rows.is_empty() {
            true => None,
            false => Some((rows_to_batch(&schema, &arrow, &rows)?, BinaryArray::from_iter_values(keys))),
        };
        Ok(HtapSnapshot { ts: txn.snapshot(), read_at, table, schema: arrow, masked, overlay })
    }
}

impl HtapSnapshot {
    /// The snapshot timestamp T.
    pub fn ts(&self) -> Ts {
        self.ts
    }

    /// The table's Arrow schema (without the key column).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The visible rows, projected (all columns for `None`); with `with_keys`
    /// each batch ends with the encoded key column [`omen_colstore::KEY_COLUMN`].
    pub fn scan(&self, projection: Option<&[usize]>, with_keys: bool) -> Result<Vec<RecordBatch>> {
        self.scan_pruned(projection, &[], with_keys)
    }

    /// [`HtapSnapshot::scan`], skipping column-store segments whose zone
    /// maps rule out one of `predicates` (see [`omen_colstore::Predicate`]:
    /// rows of the segments read, and the overlaid rows, are not filtered
    /// by them).
    pub fn scan_pruned(
        &self,
        projection: Option<&[usize]>,
        predicates: &[omen_colstore::Predicate],
        with_keys: bool,
    ) -> Result<Vec<RecordBatch>> {
        let (scan, overlay) = self.scan_parts(projection, predicates, with_keys)?;
        let mut out = scan.collect::<omen_colstore::Result<Vec<_>>>()?;
        out.extend(overlay);
        Ok(out)
    }

    /// What [`HtapSnapshot::scan_pruned`] returns, not read yet: the
    /// column store's scan (segments read as its batches are taken; see
    /// [`omen_colstore::Scan`]) and the overlaid rows, in one batch if
    /// there are any. Both own what they read: a streaming executor reads
    /// them after this snapshot is gone.
    pub fn scan_parts(
        &self,
        projection: Option<&[usize]>,
        predicates: &[omen_colstore::Predicate],
        with_keys: bool,
    ) -> Result<(omen_colstore::Scan, Option<RecordBatch>)> {
        let scan = self.table.scan_iter(self.read_at, projection, predicates, Arc::clone(&self.masked), with_keys)?;
        let overlay = match &self.overlay {
            None => None,
            Some((rows, keys)) => {
                let mut batch = match projection {
                    Some(p) => rows.project(p)?,
                    None => rows.clone(),
                };
                if with_keys {
                    batch = omen_colstore::with_key_column(&batch, Arc::new(keys.clone()))?;
                }
                Some(batch)
            }
        };
        Ok((scan, overlay))
    }
}
