//! What the sync benches share: their table.

use omen_rowstore::{ColumnDef, DataType, TableSchema};

/// A BIGINT key, two BIGINTs and a TEXT.
pub(crate) fn schema(name: &str) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![
            ColumnDef::new("id", DataType::Int64).not_null(),
            ColumnDef::new("a", DataType::Int64),
            ColumnDef::new("b", DataType::Int64),
            ColumnDef::new("c", DataType::Text),
        ],
        primary_key: vec![0],
    }
}
