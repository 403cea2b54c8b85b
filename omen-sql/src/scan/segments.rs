//! The rows of a snapshot scan, streamed: the column store's segments, each
//! read (from memory, or decoded from its file) only when the batches
//! before it have been taken, then the overlaid rows of commits sync has
//! not applied yet.
//!
//! Nothing is read while the statement is planned: planning takes the
//! segment list the zone maps leave ([`omen_colstore::Scan`]) and the
//! statistics the optimizer wants (row counts and column bounds from the
//! zone maps, inexact since dead versions count too). So a scan of a table
//! larger than memory holds one segment per partition at a time, and a
//! statement timeout or a cancel, which drop the stream, stop it between
//! two batches.
//!
//! The segments are dealt round-robin among the partitions
//! ([`omen_colstore::Scan::share`]); the overlay goes with partition 0.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::datasource::source::DataSource;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_plan::DisplayFormatType;
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use omen_colstore::{Scan, Zone};

/// A snapshot's rows as a DataFusion data source (wrapped by
/// [`crate::scan::source::SnapshotSource`] for dynamic filters).
#[derive(Debug, Clone)]
pub(crate) struct SegmentSource {
    /// The column store's part, not read yet: each execution reads shares
    /// of a copy, so a plan can run more than once.
    scan: Scan,
    /// The overlaid rows, in the scan's column layout.
    overlay: Option<RecordBatch>,
    /// Which scanned column each output column is.
    order: Arc<[usize]>,
    schema: SchemaRef,
    partitions: usize,
    fetch: Option<usize>,
}

impl SegmentSource {
    /// A source of `scan`'s rows and then `overlay`'s, whose columns
    /// (user columns, then the key if asked for) come out in `order` as
    /// `schema`, in up to `partitions` partitions.
    pub(crate) fn new(scan: Scan, overlay: Option<RecordBatch>, order: Vec<usize>, schema: SchemaRef, partitions: usize) -> Self {
        let mut source = Self { scan, overlay, order: order.into(), schema, partitions: 1, fetch: None };
        source.partitions = source.fitting(partitions);
        source
    }

    /// `target` partitions, but not more than there are segments to share.
    fn fitting(&self, target: usize) -> usize {
        target.clamp(1, self.scan.segments().max(1))
    }

    /// Statistics of the share `partition` reads, or of all of it.
    fn statistics(&self, partition: Option<usize>) -> Statistics {
        let share = match partition {
            Some(p) => self.scan.share(p, self.partitions),
            None => self.scan.clone(),
        };
        let overlay = self.overlay.as_ref().filter(|_| partition.is_none_or(|p| p == 0));
        let rows = share.versions() + overlay.map_or(0, RecordBatch::num_rows);
        let bytes = share.bytes() + overlay.map_or(0, RecordBatch::get_array_memory_size);
        // Bounds hold only if the overlaid rows are within them too.
        let zones = match (share.zones(), overlay) {
            (Some(zones), None) => Some(zones),
            (Some(zones), Some(o)) => Some(zones.iter().zip(o.columns()).map(|(z, c)| z.union(&Zone::of(c.as_ref()))).collect()),
            (None, Some(o)) => Some(o.columns().iter().map(|c| Zone::of(c.as_ref())).collect()),
            (None, None) => None,
        };
        let column = |scanned: usize| match zones.as_ref().and_then(|z| z.get(scanned)) {
            Some(zone) => zone_statistics(zone),
            // The key column, or nothing to read.
            None => ColumnStatistics::new_unknown(),
        };
        Statistics {
            num_rows: Precision::Inexact(rows),
            total_byte_size: Precision::Inexact(bytes),
            column_statistics: self.order.iter().map(|&c| column(c)).collect(),
        }
    }
}

/// What a zone map says of a column: inexact bounds and null count.
fn zone_statistics(zone: &Zone) -> ColumnStatistics {
    let bound = |v: &Option<arrow::array::ArrayRef>| {
        v.as_ref().and_then(|a| ScalarValue::try_from_array(a, 0).ok()).map_or(Precision::Absent, Precision::Inexact)
    };
    ColumnStatistics {
        null_count: Precision::Inexact(zone.null_count),
        max_value: bound(&zone.max),
        min_value: bound(&zone.min),
        ..ColumnStatistics::new_unknown()
    }
}

impl DataSource for SegmentSource {
    fn open(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let share = self.scan.share(partition, self.partitions);
        let overlay = self.overlay.clone().filter(|_| partition == 0);
        let batches = share.map(|b| b.map_err(|e| DataFusionError::External(Box::new(e)))).chain(overlay.map(Ok));
        let (order, schema) = (Arc::clone(&self.order), Arc::clone(&self.schema));
        let mut left = self.fetch.unwrap_or(usize::MAX);
        let out = batches
            .map(move |batch| {
                let batch = batch?;
                let columns = order.iter().map(|&c| Arc::clone(batch.column(c))).collect();
                // With no column (count(*)) the row count says it all.
                let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                Ok(RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options)?)
            })
            // A fetch stops reading segments once it has its rows.
            .map_while(move |batch: Result<RecordBatch>| match batch {
                Ok(_) if left == 0 => None,
                Ok(b) => {
                    let take = b.num_rows().min(left);
                    left -= take;
                    Some(Ok(b.slice(0, take)))
                }
                Err(e) => Some(Err(e)),
            });
        let stream = cooperative(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), futures::stream::iter(out)));
        Ok(Box::pin(stream))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let overlay = self.overlay.as_ref().map_or(0, RecordBatch::num_rows);
        match t {
            DisplayFormatType::TreeRender => write!(f, "segments={}\noverlay_rows={overlay}", self.scan.segments()),
            _ => {
                write!(f, "SegmentScan: partitions={}, segments={}, overlay_rows={overlay}", self.partitions, self.scan.segments())?;
                if let Some(fetch) = self.fetch {
                    write!(f, ", fetch={fetch}")?;
                }
                Ok(())
            }
        }
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        _repartition_file_min_size: usize,
        _output_ordering: Option<LexOrdering>,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        let partitions = self.fitting(target_partitions);
        Ok((partitions != self.partitions).then(|| Arc::new(Self { partitions, ..self.clone() }) as Arc<dyn DataSource>))
    }

    fn output_partitioning(&self) -> Partitioning {
        Partitioning::UnknownPartitioning(self.partitions)
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        EquivalenceProperties::new(Arc::clone(&self.schema))
    }

    /// The stream yields to Tokio as its task budget runs out, so a
    /// timeout or cancel of the statement is heard mid-scan.
    fn scheduling_type(&self) -> SchedulingType {
        SchedulingType::Cooperative
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(Arc::new(self.statistics(partition)))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        Some(Arc::new(Self { fetch: limit, ..self.clone() }))
    }

    fn fetch(&self) -> Option<usize> {
        self.fetch
    }

    /// The provider projected the scan already: a projection above it
    /// stays there.
    fn try_swapping_with_projection(&self, _projection: &ProjectionExprs) -> Result<Option<Arc<dyn DataSource>>> {
        Ok(None)
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use futures::{StreamExt, TryStreamExt};
    use omen_colstore::{ChangeBatch, ChangeOp, ColumnStore, ColumnStoreOptions, SEGMENT_ROWS};

    /// A reopened store holding table 1: `k` (0..n) and `v` (= k), in
    /// segments of at most [`SEGMENT_ROWS`] whose columns are on disk.
    fn reopened(dir: &std::path::Path, n: i64) -> ColumnStore {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Int64, false)]));
        let store = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.into()), ..Default::default() }).unwrap();
        let table = store.create_table(1, Arc::clone(&schema)).unwrap();
        let rows =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n)), Arc::new(Int64Array::from_iter_values(0..n))]);
        let ops = (0..n).map(|k| ChangeOp::Append { row: k as usize, key: k.to_be_bytes().to_vec(), ts: 1 }).collect();
        table.apply(ChangeBatch { rows: rows.unwrap(), ops }).unwrap();
        store.persist(1).unwrap();
        drop((table, store));
        ColumnStore::open(ColumnStoreOptions { dir: Some(dir.into()), ..Default::default() }).unwrap()
    }

    fn source(store: &ColumnStore, partitions: usize) -> SegmentSource {
        let scan = store.table(1).unwrap().scan_iter(1, Some(&[1]), &[], Arc::new(HashSet::new()), false).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        SegmentSource::new(scan, None, vec![0], schema, partitions)
    }

    #[tokio::test]
    async fn planning_reads_no_segment_and_a_stream_reads_only_what_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3 * SEGMENT_ROWS as i64 + 10;
        let store = reopened(dir.path(), n);
        let table = store.table(1).unwrap();
        let source = source(&store, 2);
        // Statistics come from the zone maps, without reading a column.
        let stats = source.partition_statistics(None).unwrap();
        assert_eq!(stats.num_rows, Precision::Inexact(n as usize));
        assert_eq!(stats.column_statistics[0].max_value, Precision::Inexact(ScalarValue::Int64(Some(n - 1))));
        assert_eq!(stats.column_statistics[0].min_value, Precision::Inexact(ScalarValue::Int64(Some(0))));
        assert!(matches!(stats.total_byte_size, Precision::Inexact(b) if b >= 8 * n as usize));
        let shares: usize = (0..2).map(|p| source.partition_statistics(Some(p)).unwrap().num_rows.get_value().copied().unwrap()).sum();
        assert_eq!(shares, n as usize);
        assert_eq!(table.statistics().segments_in_memory, 0);

        // One batch taken: one segment read.
        let mut stream = source.open(0, Arc::new(TaskContext::default())).unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.num_rows(), omen_colstore::BATCH_ROWS);
        assert_eq!(table.statistics().segments_in_memory, 1);
        drop(stream);

        // A fetch stops at its rows.
        let limited = source.with_fetch(Some(10)).unwrap();
        let got: Vec<RecordBatch> = limited.open(1, Arc::new(TaskContext::default())).unwrap().try_collect().await.unwrap();
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
        assert_eq!(table.statistics().segments_in_memory, 2);

        // Every partition together: every row once, in the output schema.
        let mut all = Vec::new();
        for p in 0..2 {
            let batches: Vec<RecordBatch> = source.open(p, Arc::new(TaskContext::default())).unwrap().try_collect().await.unwrap();
            all.extend(batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()));
        }
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }
}
