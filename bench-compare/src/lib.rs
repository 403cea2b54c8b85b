//! Peer-comparison benchmarks; see `benches/`. This library holds the data
//! set every bench loads alike: 100k rows of
//! `accounts(id BIGINT PRIMARY KEY, balance BIGINT, name TEXT)`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use omen_rowstore::{ColumnDef, DataType, Store, StoreOptions, TableId, TableSchema, Value};
use rusqlite::Connection;

/// Rows loaded into every system.
pub const ROWS: i64 = 100_000;

/// A xorshift generator of keys in `1..=ROWS`.
pub struct Rng(pub u64);

impl Rng {
    /// The next key.
    pub fn key(&mut self) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % ROWS as u64) as i64 + 1
    }
}

/// The row with this id.
pub fn row(id: i64, balance: i64) -> Vec<Value> {
    vec![Value::Int64(id), Value::Int64(balance), Value::Text(format!("name-{id}"))]
}

/// Creates `kv(k BIGINT PRIMARY KEY, v TEXT)`, the table of the recovery
/// and checkpoint benches.
pub fn create_kv(store: &Store) -> TableId {
    let schema = TableSchema {
        name: "kv".into(),
        columns: vec![ColumnDef::new("k", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Text)],
        primary_key: vec![0],
    };
    store.create_table(schema).unwrap().0
}

/// An in-memory row store (durability off) with the accounts loaded.
pub fn omen() -> (Store, TableId) {
    let store = Store::open(StoreOptions::default()).unwrap();
    let schema = TableSchema {
        name: "accounts".into(),
        columns: vec![
            ColumnDef::new("id", DataType::Int64).not_null(),
            ColumnDef::new("balance", DataType::Int64),
            ColumnDef::new("name", DataType::Text),
        ],
        primary_key: vec![0],
    };
    let (t, _) = store.create_table(schema).unwrap();
    let mut txn = store.begin().unwrap();
    for id in 1..=ROWS {
        txn.insert(t, row(id, 100)).unwrap();
    }
    txn.commit().unwrap();
    (store, t)
}

/// A SQLite connection with the accounts loaded: in memory, or a new
/// WAL-mode file at `path` (`synchronous=OFF`).
pub fn sqlite(path: Option<&Path>) -> Connection {
    let conn = match path {
        Some(p) => {
            let c = Connection::open(p).unwrap();
            c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;").unwrap();
            c
        }
        None => Connection::open_in_memory().unwrap(),
    };
    conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER, name TEXT)").unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut ins = tx.prepare("INSERT INTO accounts VALUES (?1, ?2, ?3)").unwrap();
        for id in 1..=ROWS {
            ins.execute(rusqlite::params![id, 100, format!("name-{id}")]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn
}
