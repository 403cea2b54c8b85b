//! HTAP snapshots: what an analytic read at timestamp T scans.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use omen_colstore::ColumnTable;
use omen_rowstore::{TableId, Transaction, Ts, Value};

use crate::convert::rows_to_batch;
use crate::error::Result;
use crate::worker::Syncer;

/// One table as of a transaction's snapshot T, plus that transaction's own
/// uncommitted writes: the column store's versions visible at T, minus the
/// keys the transaction wrote, plus the transaction's new rows.
#[derive(Debug)]
pub struct HtapSnapshot {
    ts: Ts,
    table: Arc<ColumnTable>,
    schema: SchemaRef,
    /// Keys the transaction wrote: their column-store versions are masked.
    masked: HashSet<Vec<u8>>,
    /// The transaction's new rows, with their keys.
    own: Option<(RecordBatch, BinaryArray)>,
}

impl Syncer {
    /// Snapshots of `tables` as `txn` sees them. Waits until the column store
    /// has applied every commit up to the transaction's snapshot.
    ///
    /// This version waits for the watermark rather than overlaying the row
    /// store's changes in (W, T]: exact, at the cost of the sync lag (a few
    /// milliseconds) on a read issued right after a commit.
    pub async fn snapshot(&self, txn: &Transaction, tables: &[TableId]) -> Result<HashMap<TableId, HtapSnapshot>> {
        let ts = txn.snapshot();
        self.wait_for(ts).await?;
        let mut out = HashMap::with_capacity(tables.len());
        for &id in tables {
            let (schema, arrow) = self.shared.schemas.read().get(&id).cloned().ok_or(omen_colstore::Error::UnknownTable(id))?;
            let table = self.shared.cols.table(id)?;
            let mut masked = HashSet::new();
            let mut keys = Vec::new();
            let mut rows: Vec<&[Value]> = Vec::new();
            for (key, row) in txn.pending_writes(id) {
                masked.insert(key.to_vec());
                if let Some(row) = row {
                    keys.push(key);
                    rows.push(row);
                }
            }
            let own =
                if rows.is_empty() { None } else { Some((rows_to_batch(&schema, &arrow, &rows)?, BinaryArray::from_iter_values(keys))) };
            out.insert(id, HtapSnapshot { ts, table, schema: arrow, masked, own });
        }
        Ok(out)
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
    /// rows of the segments read, and the transaction's own writes, are
    /// not filtered by them).
    pub fn scan_pruned(
        &self,
        projection: Option<&[usize]>,
        predicates: &[omen_colstore::Predicate],
        with_keys: bool,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = self.table.scan(self.ts, projection, predicates, &self.masked, with_keys)?;
        if let Some((rows, keys)) = &self.own {
            let mut batch = match projection {
                Some(p) => rows.project(p)?,
                None => rows.clone(),
            };
            if with_keys {
                batch = omen_colstore::with_key_column(&batch, Arc::new(keys.clone()))?;
            }
            out.push(batch);
        }
        Ok(out)
    }
}
