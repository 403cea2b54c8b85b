//! The encoded-primary-key column: what scans add with `with_keys` and
//! what segment files hold after the table's columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::Result;

/// Name of the encoded-primary-key column that scans add with `with_keys`.
pub const KEY_COLUMN: &str = "__omen_key";

/// The Arrow field of [`KEY_COLUMN`].
pub fn key_field() -> Field {
    Field::new(KEY_COLUMN, DataType::Binary, false)
}

/// `batch` with `keys` appended as the last column, [`KEY_COLUMN`].
pub fn with_key_column(batch: &RecordBatch, keys: ArrayRef) -> Result<RecordBatch> {
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(key_field()));
    let mut columns = batch.columns().to_vec();
    columns.push(keys);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}
