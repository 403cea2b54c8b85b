//! Row store integration tests, one binary; a module per scenario.
#![allow(clippy::unwrap_used, missing_docs)]

mod alter;
mod changes;
mod checkpoint;
mod crash;
#[cfg(feature = "failpoints")]
mod failpoints;
mod hermitage;
mod indexes;
mod list_append;
mod persistence;
mod si_model;
mod transactions;

use omen_rowstore::{ColumnDef, DataType, Store, StoreOptions, TableId, TableSchema, Value};

/// A store in memory with table `accounts(id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)`.
pub fn accounts_store() -> (Store, TableId) {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create_accounts(&store);
    (store, t)
}

pub fn create_accounts(store: &Store) -> TableId {
    let schema = TableSchema {
        name: "accounts".into(),
        columns: vec![ColumnDef::new("id", DataType::Int64).not_null(), ColumnDef::new("balance", DataType::Int64).not_null()],
        primary_key: vec![0],
    };
    store.create_table(schema).unwrap().0
}

pub fn row(id: i64, balance: i64) -> Vec<Value> {
    vec![Value::Int64(id), Value::Int64(balance)]
}

/// The ids in `accounts`, ascending.
pub fn account_ids(store: &Store) -> Vec<i64> {
    let (t, _) = store.table("accounts").unwrap();
    let rows = store.begin().unwrap().scan(t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded).unwrap();
    rows.into_iter()
        .map(|(_, r)| match r[0] {
            Value::Int64(id) => id,
            ref other => panic!("{other:?}"),
        })
        .collect()
}

pub fn key(id: i64) -> Vec<u8> {
    omen_rowstore::encode_key(&[Value::Int64(id)], &[0])
}
