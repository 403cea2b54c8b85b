//! The Hermitage anomaly catalogue (Kleppmann, github.com/ept/hermitage),
//! each test reproducing the outcome PostgreSQL's REPEATABLE READ gives.
//!
//! Setup for every test: `test(id INT PRIMARY KEY, value INT)` holding
//! (1, 10) and (2, 20). Where PostgreSQL blocks a second writer until the
//! first ends and then aborts it, OmenDB aborts it at once (first updater
//! wins, fail fast): the same transactions commit in both.
//!
//! G0, G1a, G1b, G1c, OTV, PMP, P4 and G-single are prevented. G2-item
//! (write skew) and G2 (anti-dependency cycles) are allowed, as in
//! PostgreSQL's REPEATABLE READ: snapshot isolation is not serializable.

use std::ops::Bound;

use omen_rowstore::{ColumnDef, DataType, Error, Store, StoreOptions, TableId, TableSchema, Transaction, Value, encode_key};

fn setup() -> (Store, TableId) {
    let store = Store::open(StoreOptions::default()).unwrap();
    let schema = TableSchema {
        name: "test".into(),
        columns: vec![ColumnDef::new("id", DataType::Int32).not_null(), ColumnDef::new("value", DataType::Int32)],
        primary_key: vec![0],
    };
    let (t, _) = store.create_table(schema).unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(1, 10)).unwrap();
    txn.insert(t, row(2, 20)).unwrap();
    txn.commit().unwrap();
    (store, t)
}

fn row(id: i32, value: i32) -> Vec<Value> {
    vec![Value::Int32(id), Value::Int32(value)]
}

fn key(id: i32) -> Vec<u8> {
    encode_key(&[Value::Int32(id)], &[0])
}

/// `select value from test where id = ?`
fn get(txn: &Transaction, t: TableId, id: i32) -> Option<i32> {
    match txn.get(t, &key(id)).unwrap().as_deref() {
        Some([_, Value::Int32(v)]) => Some(*v),
        None => None,
        other => panic!("unexpected row {other:?}"),
    }
}

/// `select * from test where <pred(value)>`, as (id, value) pairs.
fn select(txn: &Transaction, t: TableId, pred: impl Fn(i32) -> bool) -> Vec<(i32, i32)> {
    txn.scan(t, Bound::Unbounded, Bound::Unbounded)
        .unwrap()
        .into_iter()
        .filter_map(|(_, r)| match r.as_slice() {
            [Value::Int32(id), Value::Int32(v)] if pred(*v) => Some((*id, *v)),
            _ => None,
        })
        .collect()
}

fn set(txn: &mut Transaction, t: TableId, id: i32, value: i32) -> Result<bool, Error> {
    txn.update(t, &key(id), row(id, value))
}

fn conflict(r: Result<bool, Error>) -> bool {
    matches!(r, Err(Error::SerializationConflict { .. }))
}

fn committed(store: &Store, t: TableId) -> Vec<(i32, i32)> {
    select(&store.begin().unwrap(), t, |_| true)
}

#[test]
fn g0_write_cycles_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    set(&mut t1, t, 1, 11).unwrap();
    assert!(conflict(set(&mut t2, t, 1, 12)));
    set(&mut t1, t, 2, 21).unwrap();
    t1.commit().unwrap();
    assert!(conflict(set(&mut t2, t, 2, 22)));
    drop(t2);
    assert_eq!(committed(&store, t), vec![(1, 11), (2, 21)]);
}

#[test]
fn g1a_aborted_reads_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let t2 = store.begin().unwrap();
    set(&mut t1, t, 1, 101).unwrap();
    assert_eq!(select(&t2, t, |_| true), vec![(1, 10), (2, 20)]);
    t1.rollback();
    assert_eq!(select(&t2, t, |_| true), vec![(1, 10), (2, 20)]);
    t2.commit().unwrap();
}

#[test]
fn g1b_intermediate_reads_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let t2 = store.begin().unwrap();
    set(&mut t1, t, 1, 101).unwrap();
    assert_eq!(select(&t2, t, |_| true), vec![(1, 10), (2, 20)]);
    set(&mut t1, t, 1, 11).unwrap();
    t1.commit().unwrap();
    assert_eq!(select(&t2, t, |_| true), vec![(1, 10), (2, 20)]);
    t2.commit().unwrap();
}

#[test]
fn g1c_circular_information_flow_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    set(&mut t1, t, 1, 11).unwrap();
    set(&mut t2, t, 2, 22).unwrap();
    assert_eq!(get(&t1, t, 2), Some(20));
    assert_eq!(get(&t2, t, 1), Some(10));
    t1.commit().unwrap();
    t2.commit().unwrap();
    assert_eq!(committed(&store, t), vec![(1, 11), (2, 22)]);
}

#[test]
fn otv_observed_transaction_vanishes_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    set(&mut t1, t, 1, 11).unwrap();
    set(&mut t1, t, 2, 19).unwrap();
    assert!(conflict(set(&mut t2, t, 1, 12)));
    t1.commit().unwrap();
    let t3 = store.begin().unwrap();
    assert_eq!(get(&t3, t, 1), Some(11));
    drop(t2);
    assert_eq!(get(&t3, t, 2), Some(19));
}

#[test]
fn pmp_predicate_many_preceders_prevented() {
    let (store, t) = setup();
    let t1 = store.begin().unwrap();
    assert_eq!(select(&t1, t, |v| v == 30), vec![]);
    let mut t2 = store.begin().unwrap();
    t2.insert(t, row(3, 30)).unwrap();
    t2.commit().unwrap();
    assert_eq!(select(&t1, t, |v| v % 3 == 0), vec![]);
}

#[test]
fn pmp_write_predicates_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    // update test set value = value + 10
    for (id, v) in select(&t1, t, |_| true) {
        set(&mut t1, t, id, v + 10).unwrap();
    }
    assert_eq!(select(&t2, t, |v| v == 20), vec![(2, 20)]);
    // delete from test where value = 20: the row is T1's; T2 must abort.
    assert!(matches!(t2.delete(t, &key(2)), Err(Error::SerializationConflict { .. })));
    t1.commit().unwrap();
    drop(t2);
    assert_eq!(committed(&store, t), vec![(1, 20), (2, 30)]);
}

#[test]
fn p4_lost_update_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    assert_eq!(get(&t1, t, 1), Some(10));
    assert_eq!(get(&t2, t, 1), Some(10));
    set(&mut t1, t, 1, 11).unwrap();
    assert!(conflict(set(&mut t2, t, 1, 11)));
    t1.commit().unwrap();
    // Also when T2 writes only after T1 committed.
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    assert_eq!(get(&t2, t, 1), Some(10));
    set(&mut t1, t, 1, 11).unwrap();
    t1.commit().unwrap();
    assert!(conflict(set(&mut t2, t, 1, 11)));
}

#[test]
fn g_single_read_skew_prevented() {
    let (store, t) = setup();
    let t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    assert_eq!(get(&t1, t, 1), Some(10));
    assert_eq!(get(&t2, t, 1), Some(10));
    assert_eq!(get(&t2, t, 2), Some(20));
    set(&mut t2, t, 1, 12).unwrap();
    set(&mut t2, t, 2, 18).unwrap();
    t2.commit().unwrap();
    assert_eq!(get(&t1, t, 2), Some(20));
}

#[test]
fn g_single_with_predicate_dependencies_prevented() {
    let (store, t) = setup();
    let t1 = store.begin().unwrap();
    assert_eq!(select(&t1, t, |v| v % 5 == 0), vec![(1, 10), (2, 20)]);
    let mut t2 = store.begin().unwrap();
    set(&mut t2, t, 1, 12).unwrap();
    t2.commit().unwrap();
    assert_eq!(select(&t1, t, |v| v % 3 == 0), vec![]);
}

#[test]
fn g_single_write_skew_on_a_read_row_prevented() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    assert_eq!(get(&t1, t, 1), Some(10));
    let mut t2 = store.begin().unwrap();
    set(&mut t2, t, 1, 12).unwrap();
    set(&mut t2, t, 2, 18).unwrap();
    t2.commit().unwrap();
    // delete from test where value = 20: T1 still sees (2, 20), which T2 changed.
    assert!(matches!(t1.delete(t, &key(2)), Err(Error::SerializationConflict { .. })));
}

#[test]
fn g2_item_write_skew_is_allowed_under_snapshot_isolation() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    assert_eq!(select(&t1, t, |_| true), vec![(1, 10), (2, 20)]);
    assert_eq!(select(&t2, t, |_| true), vec![(1, 10), (2, 20)]);
    set(&mut t1, t, 1, 11).unwrap();
    set(&mut t2, t, 2, 21).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
    // Both committed although each read what the other wrote: as in PostgreSQL RR.
    assert_eq!(committed(&store, t), vec![(1, 11), (2, 21)]);
}

#[test]
fn g2_anti_dependency_cycles_are_allowed_under_snapshot_isolation() {
    let (store, t) = setup();
    let mut t1 = store.begin().unwrap();
    let mut t2 = store.begin().unwrap();
    assert_eq!(select(&t1, t, |v| v % 3 == 0), vec![]);
    assert_eq!(select(&t2, t, |v| v % 3 == 0), vec![]);
    t1.insert(t, row(3, 30)).unwrap();
    t2.insert(t, row(4, 42)).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
    assert_eq!(committed(&store, t).len(), 4);
}
