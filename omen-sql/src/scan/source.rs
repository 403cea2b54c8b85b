//! The data source of a table scan: a snapshot's batches, filtered by the
//! dynamic filters DataFusion pushes into scans while a query runs.
//!
//! A hash join, once it has built its hash table, knows which keys its
//! probe side can match; a TopK knows the bound its heap has reached.
//! DataFusion hands these out as [`DynamicFilterPhysicalExpr`]s to the
//! scans below that accept them. [`SnapshotSource`] accepts them and drops
//! rows that cannot match as each batch leaves the scan, before they are
//! hashed, repartitioned or aggregated: TPC-H q7, for example, then joins
//! the line items of two nations' suppliers, not of all of them.
//!
//! Static filters (the query's own WHERE) stay where they are, in a
//! `FilterExec` above the scan, so the optimizer's estimate of their
//! selectivity still counts; the source keeps a copy and applies it before
//! a dynamic filter, which is the dearer of the two (a hash lookup per row).
//! A dynamic filter that keeps most rows costs more than it saves, so a
//! stream stops applying one that keeps more than [`KEEP_LIMIT`] of a
//! batch's rows, and tries it again on every [`RETRY_EVERY`]th batch.

use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::filter_record_batch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, ScalarValue, Statistics};
use datafusion::config::ConfigOptions;
use datafusion::datasource::memory::DataSourceExec;
use datafusion::datasource::source::DataSource;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_plan::DisplayFormatType;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// A dynamic filter that keeps more than this share of a batch's rows is
/// set aside by the stream that measured it.
const KEEP_LIMIT: f64 = 0.1;

/// A stream that set its dynamic filters aside tries them again on every
/// this many batches.
const RETRY_EVERY: usize = 16;

/// A scan of a snapshot's batches (streamed from its segments, or rows an
/// access path read), with the dynamic filters pushed into it applied to
/// every batch.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotSource {
    batches: Arc<dyn DataSource>,
    /// Copies of the static filters above the scan (they stay there too),
    /// applied first when dynamic filters run.
    before: Vec<Arc<dyn PhysicalExpr>>,
    /// Dynamic filters, each evaluated as it stands when a batch is read.
    dynamic: Vec<Arc<dyn PhysicalExpr>>,
}

impl SnapshotSource {
    /// The execution plan that scans `batches`.
    pub(crate) fn exec(batches: impl DataSource) -> Arc<DataSourceExec> {
        DataSourceExec::from_data_source(Self { batches: Arc::new(batches), before: Vec::new(), dynamic: Vec::new() })
    }

    fn with_batches(&self, batches: Arc<dyn DataSource>) -> Arc<dyn DataSource> {
        Arc::new(Self { batches, ..self.clone() })
    }
}

/// Whether `expr` is a dynamic filter (its value changes as the query
/// runs) rather than a predicate of the query text. Only a filter that is
/// one as a whole is taken: a static conjunct holding one must still be
/// applied exactly, by the plan above.
fn is_dynamic(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
}

/// `batch` without the rows some filter rejects, and whether any filter
/// judged rows (a dynamic filter not yet set is `true` and judges none).
fn apply(filters: &[Arc<dyn PhysicalExpr>], mut batch: RecordBatch) -> Result<(RecordBatch, bool)> {
    let mut judged = false;
    for filter in filters {
        if batch.num_rows() == 0 {
            break;
        }
        batch = match filter.evaluate(&batch)? {
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => batch,
            ColumnarValue::Scalar(_) => {
                judged = true;
                batch.slice(0, 0)
            }
            ColumnarValue::Array(mask) => {
                judged = true;
                filter_record_batch(&batch, mask.as_boolean())?
            }
        };
    }
    Ok((batch, judged))
}

/// One stream's filtering: whether its dynamic filters pay, as last
/// measured.
struct Filtering {
    before: Vec<Arc<dyn PhysicalExpr>>,
    dynamic: Vec<Arc<dyn PhysicalExpr>>,
    paying: bool,
    /// Batches passed on unfiltered since the filters were set aside.
    skipped: usize,
}

impl Filtering {
    /// The rows of `batch` the filters keep, or `batch` whole while the
    /// dynamic filters are set aside (the plan above applies the static
    /// ones, and the join or TopK that made a dynamic filter is exact
    /// without it).
    fn batch(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        if !self.paying && self.skipped + 1 < RETRY_EVERY {
            self.skipped += 1;
            return Ok(batch);
        }
        self.skipped = 0;
        let (before, _) = apply(&self.before, batch)?;
        let reached = before.num_rows();
        let (kept, judged) = apply(&self.dynamic, before)?;
        // A filter not set yet says nothing of what it will keep.
        if judged {
            self.paying = kept.num_rows() as f64 <= KEEP_LIMIT * reached as f64;
        }
        Ok(kept)
    }
}

impl DataSource for SnapshotSource {
    fn open(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let stream = self.batches.open(partition, context)?;
        if self.dynamic.is_empty() {
            return Ok(stream);
        }
        let schema = stream.schema();
        let mut filtering = Filtering { before: self.before.clone(), dynamic: self.dynamic.clone(), paying: true, skipped: 0 };
        let filtered = stream.filter_map(move |batch| {
            std::future::ready(match batch.and_then(|b| filtering.batch(b)) {
                Ok(b) if b.num_rows() == 0 => None,
                other => Some(other),
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, filtered)))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.batches.fmt_as(t, f)?;
        if !self.dynamic.is_empty() && !matches!(t, DisplayFormatType::TreeRender) {
            let filters: Vec<String> = self.dynamic.iter().map(|e| e.to_string()).collect();
            write!(f, ", dynamic_filters=[{}]", filters.join(", "))?;
        }
        Ok(())
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
    ) -> Result<Option<Arc<dyn DataSource>>> {
        Ok(self.batches.repartitioned(target_partitions, repartition_file_min_size, output_ordering)?.map(|b| self.with_batches(b)))
    }

    fn output_partitioning(&self) -> Partitioning {
        self.batches.output_partitioning()
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        self.batches.eq_properties()
    }

    fn scheduling_type(&self) -> SchedulingType {
        self.batches.scheduling_type()
    }

    /// The batches' statistics; inexact once dynamic filters may drop rows.
    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let statistics = self.batches.partition_statistics(partition)?;
        Ok(if self.dynamic.is_empty() { statistics } else { Arc::new(statistics.as_ref().clone().to_inexact()) })
    }

    /// A limit applies to the rows the filters keep, so none is taken while
    /// dynamic filters are set (the limit stays above the scan).
    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        if self.dynamic.is_empty() { self.batches.with_fetch(limit).map(|b| self.with_batches(b)) } else { None }
    }

    fn fetch(&self) -> Option<usize> {
        self.batches.fetch()
    }

    fn metrics(&self) -> ExecutionPlanMetricsSet {
        self.batches.metrics()
    }

    /// Filters name columns of this scan's output: a projection is not
    /// taken in once dynamic filters are set, and drops the copies of
    /// static ones (the plan above still applies them).
    fn try_swapping_with_projection(&self, projection: &ProjectionExprs) -> Result<Option<Arc<dyn DataSource>>> {
        if !self.dynamic.is_empty() {
            return Ok(None);
        }
        let swapped = self.batches.try_swapping_with_projection(projection)?;
        Ok(swapped.map(|batches| Arc::new(Self { batches, before: Vec::new(), dynamic: Vec::new() }) as Arc<dyn DataSource>))
    }

    /// Takes the dynamic filters, and copies of the static ones (which
    /// stay with the plan above: PushedDown::No). A scan that already
    /// stops at a limit takes none: its rows were counted before any
    /// filter. A volatile filter is never copied: it must run once a row.
    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        let mut source = self.clone();
        let mut pushed = Vec::with_capacity(filters.len());
        for filter in filters {
            let usable = self.batches.fetch().is_none() && !is_volatile(&filter);
            if usable && is_dynamic(&filter) {
                source.dynamic.push(filter);
                pushed.push(PushedDown::Yes);
            } else {
                if usable && !source.before.contains(&filter) {
                    source.before.push(filter);
                }
                pushed.push(PushedDown::No);
            }
        }
        let mut propagation = FilterPushdownPropagation::with_parent_pushdown_result(pushed);
        if source.before.len() != self.before.len() || source.dynamic.len() != self.dynamic.len() {
            propagation = propagation.with_updated_node(Arc::new(source) as Arc<dyn DataSource>);
        }
        Ok(propagation)
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        for filter in self.before.iter().chain(&self.dynamic) {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        self.batches.apply_expressions(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, lit};
    use futures::TryStreamExt;

    /// Column `a` holding 0..25 * `n`, in batches of 25.
    fn batches(n: i64, fetch: Option<usize>) -> SnapshotSource {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = (0..n)
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from_iter_values(b * 25..(b + 1) * 25))]).unwrap())
            .collect();
        let memory = MemorySourceConfig::try_new(&[batches], schema, None).unwrap().with_limit(fetch);
        SnapshotSource { batches: Arc::new(memory), before: Vec::new(), dynamic: Vec::new() }
    }

    fn source(fetch: Option<usize>) -> SnapshotSource {
        batches(4, fetch)
    }

    fn a_cmp(op: Operator, v: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(Arc::new(Column::new("a", 0)), op, lit(v)))
    }

    async fn values(source: &dyn DataSource) -> Vec<i64> {
        let batches: Vec<RecordBatch> = source.open(0, Arc::new(TaskContext::default())).unwrap().try_collect().await.unwrap();
        batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect()
    }

    fn push(source: &SnapshotSource, filters: Vec<Arc<dyn PhysicalExpr>>) -> FilterPushdownPropagation<Arc<dyn DataSource>> {
        source.try_pushdown_filters(filters, &ConfigOptions::default()).unwrap()
    }

    fn dynamic(initial: Arc<dyn PhysicalExpr>) -> Arc<DynamicFilterPhysicalExpr> {
        Arc::new(DynamicFilterPhysicalExpr::new(vec![Arc::new(Column::new("a", 0))], initial))
    }

    #[tokio::test]
    async fn dynamic_filters_are_taken_and_applied_as_they_stand() {
        let filter = dynamic(lit(true));
        let result = push(&source(None), vec![Arc::clone(&filter) as _]);
        assert!(matches!(result.filters[..], [PushedDown::Yes]), "{:?}", result.filters);
        let filtered = result.updated_node.expect("a new source holding the dynamic filter");
        // Not set yet: every row.
        assert_eq!(values(filtered.as_ref()).await.len(), 100);
        filter.update(a_cmp(Operator::GtEq, 90)).unwrap();
        assert_eq!(values(filtered.as_ref()).await, (90..100).collect::<Vec<_>>());
        filter.update(lit(false)).unwrap();
        assert!(values(filtered.as_ref()).await.is_empty());
        // Row counts are no longer exact.
        let statistics = filtered.partition_statistics(None).unwrap();
        assert!(!statistics.num_rows.is_exact().unwrap_or(false));
        // A limit or a projection would apply before the filter: refused.
        assert!(filtered.with_fetch(Some(5)).is_none());
        let projection = ProjectionExprs::from_indices(&[0], filtered.eq_properties().schema());
        assert!(filtered.try_swapping_with_projection(&projection).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_filter_that_keeps_most_rows_is_set_aside_and_tried_again() {
        let filter = dynamic(a_cmp(Operator::NotEq, 30));
        let filtered = push(&source(None), vec![Arc::clone(&filter) as _]).updated_node.unwrap();
        // The first batch (0..25) kept every row: the rest pass unfiltered.
        assert_eq!(values(filtered.as_ref()).await, (0..100).collect::<Vec<_>>());
        // A selective filter keeps being applied.
        filter.update(a_cmp(Operator::Eq, 30)).unwrap();
        assert_eq!(values(filtered.as_ref()).await, vec![30]);

        // Set aside after batch 0, the filter is tried again at batch 16
        // (rows 400..425), where it keeps little, and applied from then on.
        let filter = dynamic(a_cmp(Operator::Lt, 401));
        let filtered = push(&batches(20, None), vec![Arc::clone(&filter) as _]).updated_node.unwrap();
        assert_eq!(values(filtered.as_ref()).await, (0..401).collect::<Vec<_>>());
        // A filter not yet set judges nothing: it is applied once set.
        let filter = dynamic(lit(true));
        let filtered = push(&source(None), vec![Arc::clone(&filter) as _]).updated_node.unwrap();
        let mut stream = filtered.open(0, Arc::new(TaskContext::default())).unwrap();
        assert_eq!(stream.try_next().await.unwrap().unwrap().num_rows(), 25);
        filter.update(a_cmp(Operator::Eq, 60)).unwrap();
        let rest: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert_eq!(rest.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    }

    #[tokio::test]
    async fn static_filters_stay_above_and_run_first_in_the_scan() {
        let filter = dynamic(a_cmp(Operator::Lt, 52));
        let source = source(None);
        let result = push(&source, vec![a_cmp(Operator::GtEq, 50)]);
        assert!(matches!(result.filters[..], [PushedDown::No]), "the FilterExec above keeps it");
        let with_static = result.updated_node.unwrap();
        // Without a dynamic filter the scan filters nothing itself.
        assert_eq!(values(with_static.as_ref()).await.len(), 100);
        let both = with_static.try_pushdown_filters(vec![Arc::clone(&filter) as _], &ConfigOptions::default()).unwrap();
        let both = both.updated_node.unwrap();
        // Alone, `a < 52` would keep all of the first batch and be set
        // aside; after `a >= 50` it keeps 2 of 25 and stays, so the last
        // batch (75..100) is filtered too.
        assert_eq!(values(both.as_ref()).await, vec![50, 51]);
        // A volatile filter is never copied.
        let random: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            datafusion::physical_expr::ScalarFunctionExpr::try_new(
                datafusion::functions::math::random(),
                vec![],
                &Schema::empty(),
                Arc::new(ConfigOptions::default()),
            )
            .map(Arc::new)
            .unwrap(),
            Operator::Lt,
            lit(0.5),
        ));
        assert!(push(&source, vec![random]).updated_node.is_none());
    }

    #[test]
    fn a_scan_with_a_limit_takes_no_filter() {
        let result = push(&source(Some(5)), vec![dynamic(lit(true))]);
        assert!(matches!(result.filters[..], [PushedDown::No]));
        assert!(result.updated_node.is_none());
    }

    #[tokio::test]
    async fn a_join_filters_its_probe_side_scan_and_keeps_every_match() {
        use crate::{Engine, EngineOptions, Output};
        use arrow::array::StringArray;
        let engine = Engine::open(EngineOptions::default()).unwrap();
        let mut s = engine.session();
        for sql in [
            "CREATE TABLE big (id BIGINT PRIMARY KEY, k BIGINT)",
            "CREATE TABLE small (k BIGINT PRIMARY KEY)",
            "INSERT INTO big SELECT value, value % 100 FROM generate_series(1, 5000)",
            "INSERT INTO small VALUES (3), (5), (1000)",
        ] {
            s.execute(sql, &[]).await.unwrap();
        }
        async fn rows(s: &mut crate::Session, sql: &str) -> Vec<RecordBatch> {
            let Output::Rows { stream, .. } = s.execute(sql, &[]).await.unwrap() else { panic!("{sql}: no rows") };
            stream.try_collect().await.unwrap()
        }
        let query = "SELECT count(*), sum(big.id) FROM big JOIN small ON big.k = small.k";
        let plan: String = rows(&mut s, &format!("EXPLAIN ANALYZE {query}"))
            .await
            .iter()
            .flat_map(|b| {
                b.column(1).as_any().downcast_ref::<StringArray>().unwrap().iter().flatten().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        assert!(plan.contains("dynamic_filters=[DynamicFilter"), "{plan}");
        // The join's probe side got only the rows that match (of 5,000).
        let join = plan.lines().find(|l| l.contains("HashJoinExec")).unwrap_or_default();
        assert!(join.contains(" input_rows=100,"), "{plan}");
        let got = rows(&mut s, query).await;
        let want_sum: i64 = (1..=5000).filter(|v| v % 100 == 3 || v % 100 == 5).sum();
        let count = got[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        let sum = got[0].column(1).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!((count, sum), (100, want_sum));
    }
}
