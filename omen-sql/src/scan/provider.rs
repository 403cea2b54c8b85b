//! The DataFusion table over an [`HtapSnapshot`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session as DfSession;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use omen_rowstore::{KeyedRows, TableId, TableSchema, Value};
use omen_sync::HtapSnapshot;

use crate::scan::segments::SegmentSource;
use crate::scan::source::SnapshotSource;

/// The snapshots one execution of a statement reads, by table, and the
/// execution's id (the column store's access traces group a statement's
/// scans by it). Set as an extension of the session config that physical
/// planning runs with, so a plan made once (a prepared statement) reads a
/// new snapshot each time.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    pub(crate) tables: HashMap<TableId, HtapSnapshot>,
    pub(crate) execution: u64,
}

impl Snapshots {
    /// `tables` for a new execution.
    pub(crate) fn new(tables: HashMap<TableId, HtapSnapshot>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self { tables, execution: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }
    }
}

/// One table as a statement sees it: planned once, bound to the rows of an
/// execution's transaction at scan time (see [`Snapshots`]). With
/// `with_keys`, the schema ends with the hidden key column that UPDATE and
/// DELETE use to find the rows they change.
#[derive(Debug)]
pub(crate) struct SnapshotTable {
    id: TableId,
    name: String,
    schema: SchemaRef,
    /// Columns of the table itself (the key column, if any, comes after).
    ncols: usize,
    with_keys: bool,
    /// Column DEFAULTs, for INSERTs that leave columns out.
    defaults: HashMap<String, Expr>,
    /// Rows already read along an access path (with the key column when
    /// `with_keys`): scanned instead of the snapshot. See [`crate::plan::access`].
    probed: Option<RecordBatch>,
}

impl SnapshotTable {
    pub(crate) fn new(id: TableId, table: &TableSchema, with_keys: bool) -> Self {
        let arrow = omen_sync::convert::arrow_schema(table);
        let mut fields: Vec<_> = arrow.fields().iter().cloned().collect();
        if with_keys {
            fields.push(Arc::new(omen_colstore::key_field()));
        }
        let defaults = table
            .columns
            .iter()
            .filter_map(|c| c.default.as_ref().map(|d| (c.name.clone(), Expr::Literal(crate::params::scalar(d), None))))
            .collect();
        Self {
            id,
            name: table.name.clone(),
            schema: Arc::new(Schema::new(fields)),
            ncols: table.columns.len(),
            with_keys,
            defaults,
            probed: None,
        }
    }

    pub(crate) fn id(&self) -> TableId {
        self.id
    }

    /// Whether this scan reads rows an access path chose.
    pub(crate) fn is_probed(&self) -> bool {
        self.probed.is_some()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// This table restricted to `rows` (of `table`, with their keys), read
    /// along an access path.
    pub(crate) fn with_rows(&self, table: &TableSchema, rows: KeyedRows) -> omen_sync::Result<Self> {
        let arrow = Arc::new(Schema::new(self.schema.fields()[..self.ncols].to_vec()));
        let values: Vec<&[Value]> = rows.iter().map(|(_, r)| r.as_slice()).collect();
        let mut batch = omen_sync::convert::rows_to_batch(table, &arrow, &values)?;
        if self.with_keys {
            let keys = BinaryArray::from_iter_values(rows.iter().map(|(k, _)| k));
            batch = omen_colstore::with_key_column(&batch, Arc::new(keys))?;
        }
        Ok(Self {
            id: self.id,
            name: self.name.clone(),
            schema: Arc::clone(&self.schema),
            ncols: self.ncols,
            with_keys: self.with_keys,
            defaults: self.defaults.clone(),
            probed: Some(batch),
        })
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    /// Every filter is taken as inexact: DataFusion still applies it,
    /// [`crate::plan::access`] may use it to read key ranges instead of the table,
    /// and the column store skips segments by it ([`crate::scan::pruning`]).
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    /// Reads the rows an access path chose, or else the snapshot. The
    /// projection is applied before visibility filtering, so unprojected
    /// columns are never copied.
    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(batch) = &self.probed {
            let batches = MemorySourceConfig::try_new(&[vec![batch.clone()]], Arc::clone(&self.schema), projection.cloned())?;
            return Ok(SnapshotSource::exec(batches));
        }
        let snapshots = state
            .config()
            .get_extension::<Snapshots>()
            .ok_or_else(|| DataFusionError::Internal(format!("table {} scanned without a snapshot", self.name)))?;
        let snapshot = snapshots
            .tables
            .get(&self.id)
            .ok_or_else(|| DataFusionError::Internal(format!("no snapshot of table {} for this statement", self.name)))?;
        let ncols = self.ncols;
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let wanted = projection.unwrap_or(&all);
        let user: Vec<usize> = wanted.iter().copied().filter(|&i| i < ncols).collect();
        let want_key = self.with_keys && wanted.contains(&ncols);
        let predicates = crate::scan::pruning::predicates(filters, &self.schema, ncols);
        let (scan, overlay) =
            snapshot.scan_parts(Some(&user), &predicates, want_key).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let scan = scan.for_statement(snapshots.execution);
        // Map the requested order onto the scanned columns (user columns in
        // `user` order, then the key).
        let order: Vec<usize> =
            wanted.iter().map(|&i| if i < ncols { user.iter().position(|&u| u == i).unwrap_or(0) } else { user.len() }).collect();
        let projected = Arc::new(self.schema.project(wanted)?);
        // Spread segments over the session's partitions so both cores work.
        let partitions = state.config().target_partitions();
        Ok(SnapshotSource::exec(SegmentSource::new(scan, overlay, order, projected, partitions)))
    }
}
