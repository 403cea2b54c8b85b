//! ALTER TABLE in the row store: rows reshaped, indexes kept or dropped,
//! the change stream told, old snapshots refused, and a reopened store
//! replaying the same rewrite.

use std::time::Duration;

use omen_rowstore::{Alteration, Change, ColumnDef, DataType, Durability, Error, KeyRange, Store, StoreOptions, TableSchema, Value};

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions { dir: Some(dir.to_path_buf()), durability: Durability::Off, gc_interval: Duration::ZERO, ..StoreOptions::default() }
}

/// `items` of `indexes.rs` (index `items_a` on a, unique `items_b` on b),
/// holding ids 1..=n.
fn items(store: &Store, n: i64) {
    let id = crate::indexes::create(store, true);
    let mut txn = store.begin().unwrap();
    for i in 1..=n {
        txn.insert(id, vec![Value::Int64(i), Value::Int64(i % 3), Value::Text(format!("b{i}"))]).unwrap();
    }
    txn.commit().unwrap();
}

/// Every row of `table`, in key order.
fn dump(store: &Store, table: &str) -> Vec<Vec<Value>> {
    let (id, _) = store.table(table).unwrap();
    let txn = store.begin().unwrap();
    txn.scan(id, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded).unwrap().into_iter().map(|(_, r)| r).collect()
}

fn index_ids(store: &Store, table: &str, index: &str, eq: Value) -> Vec<Value> {
    let (id, _) = store.table(table).unwrap();
    let txn = store.begin().unwrap();
    let rows = txn.index_scan(id, index, &KeyRange::prefix(vec![eq]), usize::MAX).unwrap().expect("index readable");
    rows.into_iter().map(|(_, r)| r[0].clone()).collect()
}

#[test]
fn add_drop_and_rename_reshape_rows_and_indexes_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    items(&store, 6);
    let mut col = ColumnDef::new("c", DataType::Int32).not_null();
    col.default = Some(Value::Int32(7));
    store.alter_table("items", &[Alteration::AddColumn(col)]).unwrap();
    assert!(dump(&store, "items").iter().all(|r| r.len() == 4 && r[3] == Value::Int32(7)));
    assert_eq!(index_ids(&store, "items", "items_a", Value::Int64(1)), vec![Value::Int64(1), Value::Int64(4)]);

    store.alter_table("items", &[Alteration::DropColumn("b".into())]).unwrap();
    assert!(!store.index_exists("items_b"), "an index on a dropped column goes with it");
    assert_eq!(store.indexes("items").iter().map(|i| i.columns.clone()).collect::<Vec<_>>(), vec![vec![1]]);
    store.alter_table("items", &[Alteration::RenameColumn { from: "a".into(), to: "aa".into() }]).unwrap();
    store.alter_table("items", &[Alteration::RenameTable("things".into())]).unwrap();
    assert!(store.table("items").is_none());
    let expect = dump(&store, "things");
    assert_eq!(expect.len(), 6);
    assert_eq!(expect[0], vec![Value::Int64(1), Value::Int64(1), Value::Int32(7)]);
    let (_, schema) = store.table("things").unwrap();
    assert_eq!(schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["id", "aa", "c"]);

    // Writes after the rewrite go to the new table, and the log replays it all.
    let (id, _) = store.table("things").unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(id, vec![Value::Int64(9), Value::Int64(1), Value::Int32(0)]).unwrap();
    txn.commit().unwrap();
    let expect = dump(&store, "things");
    store.close().unwrap();
    drop(store);
    let store = Store::open(options(dir.path())).unwrap();
    assert_eq!(dump(&store, "things"), expect);
    assert_eq!(index_ids(&store, "things", "items_a", Value::Int64(1)), vec![Value::Int64(1), Value::Int64(4), Value::Int64(9)]);
    let (_, schema) = store.table("things").unwrap();
    assert_eq!(schema.columns[2].default, Some(Value::Int32(7)));
}

#[test]
fn a_failed_alteration_changes_nothing() {
    let store = Store::open(StoreOptions::default()).unwrap();
    items(&store, 3);
    let before = dump(&store, "items");
    let err = store.alter_table("items", &[Alteration::AddColumn(ColumnDef::new("c", DataType::Int32).not_null())]).unwrap_err();
    assert!(matches!(err, Error::NotNull { .. }), "{err}");
    assert!(matches!(store.alter_table("items", &[Alteration::DropColumn("id".into())]), Err(Error::Schema { .. })));
    assert!(matches!(store.alter_table("nope", &[Alteration::DropColumn("a".into())]), Err(Error::UnknownTable(_))));
    let other = TableSchema { name: "other".into(), columns: vec![ColumnDef::new("x", DataType::Int32)], primary_key: vec![] };
    store.create_table(other).unwrap();
    assert!(matches!(store.alter_table("items", &[Alteration::RenameTable("other".into())]), Err(Error::TableExists(_))));
    assert_eq!(dump(&store, "items"), before);
    assert_eq!(store.indexes("items").len(), 2);
}

#[test]
fn old_snapshots_are_refused_and_the_change_stream_sees_the_rewrite() {
    let store = Store::open(StoreOptions::default()).unwrap();
    items(&store, 2);
    let (old, _) = store.table("items").unwrap();
    let reader = store.begin().unwrap();
    let changes = store.subscribe(16);
    store.alter_table("items", &[Alteration::RenameColumn { from: "b".into(), to: "bee".into() }]).unwrap();
    assert!(matches!(reader.get(old, &omen_rowstore::encode_key(&[Value::Int64(1)], &[0])), Err(Error::UnknownTable(_))));

    let (new, _) = store.table("items").unwrap();
    let records: Vec<_> = std::iter::from_fn(|| changes.try_recv().unwrap()).collect();
    assert_eq!(records.len(), 3);
    assert!(records.windows(2).all(|w| w[0].ts < w[1].ts));
    assert_eq!(records[2].ts, store.current_ts());
    assert!(matches!(records[0].change, Change::DropTable { id } if id == old));
    assert!(matches!(&records[1].change, Change::CreateTable { id, schema } if *id == new && schema.columns[2].name == "bee"));
    match &records[2].change {
        Change::Commit(rows) => assert_eq!(rows.iter().filter(|r| r.table == new).count(), 2),
        other => panic!("expected the rows, got {other:?}"),
    }
}

/// pgbench's order: a keyless table filled, then given its primary key.
#[test]
fn a_primary_key_added_to_a_filled_table_keys_its_rows_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    let schema = TableSchema {
        name: "accounts".into(),
        columns: vec![ColumnDef::new("aid", DataType::Int32), ColumnDef::new("abalance", DataType::Int32)],
        primary_key: vec![],
    };
    let (id, _) = store.create_table(schema).unwrap();
    let mut txn = store.begin().unwrap();
    for aid in [3, 1, 2] {
        txn.insert(id, vec![Value::Int32(aid), Value::Int32(aid * 10)]).unwrap();
    }
    txn.commit().unwrap();
    store.alter_table("accounts", &[Alteration::AddPrimaryKey(vec!["aid".into()])]).unwrap();

    let check = |store: &Store| {
        let (id, schema) = store.table("accounts").unwrap();
        assert_eq!(schema.primary_key, vec![0]);
        assert!(!schema.columns[0].nullable, "key columns become NOT NULL");
        let txn = store.begin().unwrap();
        let key = omen_rowstore::encode_key(&[Value::Int32(2)], &[0]);
        assert_eq!(txn.get(id, &key).unwrap(), Some(vec![Value::Int32(2), Value::Int32(20)]));
        assert_eq!(dump(store, "accounts").iter().map(|r| r[0].clone()).collect::<Vec<_>>(), [1, 2, 3].map(Value::Int32));
    };
    check(&store);
    let (id, _) = store.table("accounts").unwrap();
    let mut txn = store.begin().unwrap();
    assert!(matches!(txn.insert(id, vec![Value::Int32(1), Value::Int32(0)]), Err(Error::DuplicateKey { .. })));
    drop(txn);
    store.close().unwrap();
    drop(store);
    check(&Store::open(options(dir.path())).unwrap());
}

#[test]
fn a_primary_key_is_refused_over_duplicates_nulls_or_an_existing_key() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let schema = TableSchema { name: "t".into(), columns: vec![ColumnDef::new("a", DataType::Int32)], primary_key: vec![] };
    let (id, _) = store.create_table(schema).unwrap();
    let mut txn = store.begin().unwrap();
    for a in [Value::Int32(1), Value::Int32(1), Value::Null] {
        txn.insert(id, vec![a]).unwrap();
    }
    txn.commit().unwrap();
    let add = [Alteration::AddPrimaryKey(vec!["a".into()])];
    assert!(matches!(store.alter_table("t", &add), Err(Error::NotNull { .. } | Error::DuplicateKey { .. })));
    assert_eq!(dump(&store, "t").len(), 3, "a refused key changes nothing");
    assert!(matches!(store.alter_table("items_none", &add), Err(Error::UnknownTable(_))));
    items(&store, 1);
    assert!(matches!(store.alter_table("items", &[Alteration::AddPrimaryKey(vec!["a".into()])]), Err(Error::Schema { .. })));
    assert!(matches!(store.alter_table("t", &[Alteration::AddPrimaryKey(vec!["zz".into()])]), Err(Error::UnknownColumn { .. })));
}
