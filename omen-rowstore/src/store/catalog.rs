//! The catalog: tables and their secondary indexes, by id and by name, and
//! the DDL that changes them (CREATE and DROP TABLE and INDEX, ALTER TABLE).
//! DDL takes a timestamp of its own under the commit lock and logs a
//! record; index DDL and ALTER first close the table's gate to writers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Store;
use crate::alter::{self, Alteration, Rebuilt, Reshape};
use crate::changes::{Change, ChangeRecord};
use crate::error::{Error, Result};
use crate::index::{Index, IndexDef};
use crate::manifest::RetiredTable;
use crate::schema::{TableId, TableSchema};
use crate::snapshots::Ts;
use crate::table::{Encoded, Table};
use crate::wal::WalRecord;

/// How long index DDL waits for open transactions that wrote its table.
const DDL_PATIENCE: Duration = Duration::from_secs(10);

/// Tables and indexes. Index entry tables are in `by_id` (transactions
/// reach them by id) but have no name there.
#[derive(Default)]
pub(super) struct Catalog {
    pub(super) by_id: HashMap<TableId, Arc<Table>>,
    pub(super) by_name: HashMap<String, TableId>,
    /// Index name to (table id, entries table id).
    pub(super) indexes: HashMap<String, (TableId, TableId)>,
    /// Tables dropped (or rewritten by ALTER) whose drop the log may still
    /// hold: replaying the log decodes their rows with these schemas.
    pub(super) retired: Vec<RetiredTable>,
}

impl Catalog {
    /// The live table named `name`.
    pub(super) fn named(&self, name: &str) -> Option<&Arc<Table>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    /// Adds `index` to `table` and to the catalog.
    pub(super) fn add_index(&mut self, table: &Table, index: Arc<Index>) {
        self.indexes.insert(index.def.name.clone(), (table.id, index.entries.id));
        self.by_id.insert(index.entries.id, Arc::clone(&index.entries));
        let mut all = table.indexes().to_vec();
        all.push(index);
        table.set_indexes(all);
    }

    /// Puts a rebuilt table (see [`crate::alter`]) in the place of table
    /// `old` at `ts`; its indexes are readable from `ready`.
    pub(super) fn replace_table(&mut self, old: TableId, rebuilt: Rebuilt, ts: Ts, ready: Ts) {
        self.remove_table(old, ts);
        let table = rebuilt.table;
        self.by_name.insert(table.schema.name.clone(), table.id);
        self.by_id.insert(table.id, Arc::clone(&table));
        for mut ix in rebuilt.indexes {
            ix.ready = ready;
            self.add_index(&table, Arc::new(ix));
        }
    }

    /// Removes an index by name.
    pub(super) fn remove_index(&mut self, name: &str) {
        let Some((table, id)) = self.indexes.remove(name) else { return };
        self.by_id.remove(&id);
        if let Some(table) = self.by_id.get(&table) {
            table.set_indexes(table.indexes().iter().filter(|i| i.def.name != name).cloned().collect());
        }
    }

    /// Removes a table and its indexes, dropped at `ts`.
    pub(super) fn remove_table(&mut self, id: TableId, ts: Ts) -> Option<Arc<Table>> {
        let table = self.by_id.remove(&id)?;
        self.by_name.remove(&table.schema.name);
        self.retired.push(RetiredTable { id, dropped: ts, schema: (*table.schema).clone() });
        for ix in table.indexes().iter() {
            self.indexes.remove(&ix.def.name);
            self.by_id.remove(&ix.entries.id);
        }
        table.set_indexes(Vec::new());
        Some(table)
    }
}

impl Store {
    /// Creates a table; returns its id and the commit timestamp of the DDL.
    pub fn create_table(&self, schema: TableSchema) -> Result<(TableId, Ts)> {
        schema.validate()?;
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        if self.inner.catalog.read().by_name.contains_key(&schema.name) {
            return Err(Error::TableExists(schema.name));
        }
        let id = commit.next_table_id;
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::CreateTable { ts, id, schema: schema.clone() })?;
        }
        commit.next_table_id += 1;
        let table = Arc::new(Table::new(id, schema, false));
        let schema = Arc::clone(&table.schema);
        {
            let mut catalog = self.inner.catalog.write();
            catalog.by_name.insert(schema.name.clone(), id);
            catalog.by_id.insert(id, table);
        }
        self.advance(&mut commit, ts, [ChangeRecord::new(ts, Change::CreateTable { id, schema })]);
        Ok((id, ts))
    }

    /// Drops a table by name; returns its id. Transactions that wrote to it
    /// fail at commit with [`Error::UnknownTable`].
    pub fn drop_table(&self, name: &str) -> Result<TableId> {
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let id = self.table(name).map(|(id, _)| id).ok_or_else(|| Error::UnknownTable(name.into()))?;
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::DropTable { ts, id })?;
        }
        let mut catalog = self.inner.catalog.write();
        catalog.remove_table(id, ts);
        // No log to replay: dropped tables' schemas are needed by nothing.
        if self.inner.wal.is_none() {
            catalog.retired.clear();
        }
        drop(catalog);
        self.advance(&mut commit, ts, [ChangeRecord::new(ts, Change::DropTable { id })]);
        Ok(id)
    }

    /// Builds a secondary index over the table named `table` and returns
    /// the commit timestamp of the DDL; snapshots from then on can read it.
    ///
    /// Waits for open transactions that wrote the table to finish (and holds
    /// new writers back meanwhile), for at most ten seconds, failing with
    /// [`Error::LockTimeout`]. A unique index over rows that repeat its
    /// values fails with [`Error::UniqueViolation`] and leaves nothing.
    pub fn create_index(&self, table: &str, def: IndexDef) -> Result<Ts> {
        self.check_open()?;
        let t = self.inner.catalog.read().named(table).cloned().ok_or_else(|| Error::UnknownTable(table.into()))?;
        def.validate(&t.schema)?;
        if self.inner.catalog.read().indexes.contains_key(&def.name) {
            return Err(Error::IndexExists(def.name));
        }
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: table.into() })?;
        let id = {
            let mut commit = self.inner.commit.lock();
            commit.next_table_id += 1;
            commit.next_table_id - 1
        };
        let entries = Arc::new(Table::new(id, Index::entries_schema(&def.name), true));
        let mut index = Index { def, entries, ready: 0 };
        fill(&t, &index, self.current_ts())?;

        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        if !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, &t)) {
            return Err(Error::UnknownTable(table.into()));
        }
        if catalog.indexes.contains_key(&index.def.name) {
            return Err(Error::IndexExists(index.def.name));
        }
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::CreateIndex { ts, id, table: t.id, def: index.def.clone() })?;
        }
        index.ready = ts;
        catalog.add_index(&t, Arc::new(index));
        drop(catalog);
        self.publish_catalog_change(&mut commit, ts);
        Ok(ts)
    }

    /// Drops the secondary index named `name`, waiting for open
    /// transactions that wrote its table as [`Store::create_index`] does.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        self.check_open()?;
        let unknown = || Error::UnknownIndex(name.into());
        let table = self.inner.catalog.read().indexes.get(name).map(|&(table, _)| table).ok_or_else(unknown)?;
        let t = self.table_by_id(table)?;
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: t.schema.name.clone() })?;
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        let id = catalog.indexes.get(name).map(|&(_, id)| id).ok_or_else(unknown)?;
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::DropIndex { ts, id })?;
        }
        catalog.remove_index(name);
        drop(catalog);
        self.publish_catalog_change(&mut commit, ts);
        Ok(())
    }

    /// Changes the definition of the table named `name` by rewriting it
    /// (see [`Alteration`]): the alterations apply in order, all or none.
    /// Returns the commit timestamp of the DDL.
    ///
    /// Waits for open transactions that wrote the table, as
    /// [`Store::create_index`] does, then builds the new table (a new
    /// [`TableId`]) from every live row and swaps it in. Transactions whose
    /// snapshot predates it get [`Error::UnknownTable`] from the table.
    /// A failure (a row that does not fit, a name that is taken) changes
    /// nothing.
    pub fn alter_table(&self, name: &str, alterations: &[Alteration]) -> Result<Ts> {
        self.check_open()?;
        let t = self.inner.catalog.read().named(name).cloned().ok_or_else(|| Error::UnknownTable(name.into()))?;
        let reshape = Reshape::of(&t.schema, alterations)?;
        let renamed = (reshape.schema.name != t.schema.name).then(|| reshape.schema.name.clone());
        let taken = |catalog: &Catalog| renamed.as_ref().is_some_and(|n| catalog.by_name.contains_key(n));
        if taken(&self.inner.catalog.read()) {
            return Err(Error::TableExists(reshape.schema.name));
        }
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: name.into() })?;
        let nindexes = t.indexes().iter().filter(|ix| reshape.index(&ix.def).is_some()).count() as u64;
        let new_id = {
            let mut commit = self.inner.commit.lock();
            commit.next_table_id += 1 + nindexes;
            commit.next_table_id - 1 - nindexes
        };
        // The gate is closed: no transaction holds uncommitted writes to the
        // table, so the newest committed state is all there is to copy.
        let read_ts = self.current_ts();
        let subscribed = self.inner.commit.lock().publisher.has_subscribers();
        let mut rebuilt = alter::rebuild(&t, &reshape, new_id, read_ts, subscribed)?;
        for ix in &rebuilt.indexes {
            fill(&rebuilt.table, ix, read_ts)?;
        }

        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        if !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, &t)) {
            return Err(Error::UnknownTable(name.into()));
        }
        if taken(&catalog) {
            return Err(Error::TableExists(reshape.schema.name));
        }
        // Three change records (drop, create, the rows), one timestamp each,
        // so a reader's sync wait covers all of them.
        let ts = commit.last_ts + 3;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::AlterTable { ts, id: t.id, new_id, reshape })?;
        }
        let (schema, rows) = (Arc::clone(&rebuilt.table.schema), std::mem::take(&mut rebuilt.changes));
        catalog.replace_table(t.id, rebuilt, ts, ts);
        if self.inner.wal.is_none() {
            catalog.retired.clear();
        }
        drop(catalog);
        let records = [
            ChangeRecord::new(ts - 2, Change::DropTable { id: t.id }),
            ChangeRecord::new(ts - 1, Change::CreateTable { id: new_id, schema }),
            ChangeRecord::new(ts, Change::Commit(rows)),
        ];
        self.advance(&mut commit, ts, records);
        Ok(ts)
    }

    /// Whether an index named `name` exists.
    pub fn index_exists(&self, name: &str) -> bool {
        self.inner.catalog.read().indexes.contains_key(name)
    }

    /// The secondary indexes of the table named `table`, in creation order.
    pub fn indexes(&self, table: &str) -> Vec<IndexDef> {
        let t = self.inner.catalog.read().named(table).cloned();
        t.map(|t| t.indexes().iter().map(|i| i.def.clone()).collect()).unwrap_or_default()
    }

    /// The id and schema of the table named `name`.
    pub fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)> {
        self.inner.catalog.read().named(name).map(|t| (t.id, Arc::clone(&t.schema)))
    }

    /// Every table, ordered by id.
    pub fn tables(&self) -> Vec<(TableId, Arc<TableSchema>)> {
        let catalog = self.inner.catalog.read();
        let mut all: Vec<_> = catalog.by_id.values().filter(|t| !t.is_index).map(|t| (t.id, Arc::clone(&t.schema))).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }
}

/// Writes `index`'s entries for the rows of `table` visible at `ts`, as
/// versions committed at `ts`. Nothing else may write the table meanwhile
/// (its gate is closed, or the store is opening), and no snapshot reads the
/// entries until the index is published.
pub(super) fn fill(table: &Table, index: &Index, ts: Ts) -> Result<()> {
    let mut failed = None;
    table.visit(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, ts, |key, bytes| {
        let row = match crate::codec::row::decode_row(bytes, &table.schema) {
            Ok(row) => row,
            Err(e) => {
                failed = Some(e);
                return false;
            }
        };
        let entry = index.entry_key(&row, key);
        match index.entries.lock(&entry, 0, ts, crate::table::WriteKind::Insert) {
            Ok((chain, _)) => {
                let value = crate::codec::row::encode_row(&[crate::value::Value::Bytes(key.to_vec())]);
                chain.install(ts, Some(Encoded::Owned(value)), ts);
                true
            }
            Err(_) => {
                let key = index.def.values_text(&table.schema, &row);
                failed = Some(Error::UniqueViolation { index: index.def.name.clone(), table: table.schema.name.clone(), key });
                false
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}
