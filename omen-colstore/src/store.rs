//! The set of column tables.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::table::ColumnTable;

/// The column store: tables by id (the ids the row store assigns).
#[derive(Debug, Default)]
pub struct ColumnStore {
    tables: RwLock<HashMap<u64, Arc<ColumnTable>>>,
}

impl ColumnStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty table.
    pub fn create_table(&self, id: u64, schema: SchemaRef) -> Result<Arc<ColumnTable>> {
        let mut tables = self.tables.write();
        if tables.contains_key(&id) {
            return Err(Error::TableExists(id));
        }
        let table = Arc::new(ColumnTable::new(schema));
        tables.insert(id, Arc::clone(&table));
        Ok(table)
    }

    /// Drops a table; scans already running keep their segments.
    pub fn drop_table(&self, id: u64) -> Result<()> {
        self.tables.write().remove(&id).map(drop).ok_or(Error::UnknownTable(id))
    }

    /// The table with this id.
    pub fn table(&self, id: u64) -> Result<Arc<ColumnTable>> {
        self.tables.read().get(&id).cloned().ok_or(Error::UnknownTable(id))
    }
}
