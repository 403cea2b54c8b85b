//! Catalog tables whose rows are computed when a query scans them, from
//! the row store's current catalog: OmenDB's part of `pg_catalog`
//! (`pg_indexes.rs`) and `information_schema` (`information_schema.rs`).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// What a computed table holds: its schema, and its rows on demand.
#[async_trait]
pub(crate) trait Rows: Debug + Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;

    /// The rows now; `state` is the scanning query's session.
    async fn batches(&self, state: &dyn Session) -> Result<Vec<RecordBatch>>;
}

/// A [`Rows`] as a table: each scan computes the rows afresh.
#[derive(Debug)]
pub(crate) struct Computed<R>(pub(crate) R);

#[async_trait]
impl<R: Rows> TableProvider for Computed<R> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.0.batches(state).await?;
        MemTable::try_new(self.0.schema(), vec![batches])?.scan(state, projection, filters, limit).await
    }
}

/// One row: values by column name.
pub(crate) type Row<'a> = HashMap<&'a str, ScalarValue>;

/// Rows as a batch of `schema`: each column's value from the row's map,
/// else NULL if the column is nullable, else its type's zero or empty.
pub(crate) fn batch_of(schema: &SchemaRef, rows: &[Row<'_>]) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            if rows.is_empty() {
                return Ok(arrow::array::new_empty_array(field.data_type()));
            }
            let fallback =
                if field.is_nullable() { ScalarValue::try_from(field.data_type())? } else { ScalarValue::new_default(field.data_type())? };
            let values = rows.iter().map(|row| row.get(field.name().as_str()).cloned().unwrap_or_else(|| fallback.clone()));
            let array: ArrayRef = ScalarValue::iter_to_array(values)?;
            if array.data_type() == field.data_type() { Ok(array) } else { Ok(arrow::compute::cast(&array, field.data_type())?) }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn missing_values_are_null_or_zero() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Boolean, false),
        ]));
        let rows = vec![Row::from([("a", ScalarValue::Int32(Some(7)))]), Row::from([("b", ScalarValue::from("x"))])];
        let batch = batch_of(&schema, &rows).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[batch]).unwrap().to_string();
        assert!(text.contains("| 7 |   | false |"), "{text}");
        assert!(text.contains("| 0 | x | false |"), "{text}");
        assert_eq!(batch_of(&schema, &[]).unwrap().num_rows(), 0);
    }
}
