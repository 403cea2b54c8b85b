//! Secondary indexes against a model: every index read equals the model's
//! filter of the rows the transaction sees, unique indexes refuse exactly
//! the writes the model says repeat a value, and a reopened store rebuilds
//! the same indexes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use omen_rowstore::{
    ColumnDef, DataType, Durability, Error, IndexDef, KeyRange, Store, StoreOptions, TableId, TableSchema, Transaction, Value, encode_key,
};
use proptest::prelude::*;

/// `items(id BIGINT PRIMARY KEY, a BIGINT, b TEXT)`, index `items_a` on
/// (a) and unique index `items_b` on (b).
pub(crate) fn create(store: &Store, with_indexes: bool) -> TableId {
    let schema = TableSchema {
        name: "items".into(),
        columns: vec![
            ColumnDef::new("id", DataType::Int64).not_null(),
            ColumnDef::new("a", DataType::Int64),
            ColumnDef::new("b", DataType::Text),
        ],
        primary_key: vec![0],
    };
    let t = store.create_table(schema).unwrap().0;
    if with_indexes {
        store.create_index("items", IndexDef { name: "items_a".into(), columns: vec![1], unique: false }).unwrap();
        store.create_index("items", IndexDef { name: "items_b".into(), columns: vec![2], unique: true }).unwrap();
    }
    t
}

type Row = (Option<i64>, Option<String>);
type Model = BTreeMap<i64, Row>;

fn values(id: i64, (a, b): &Row) -> Vec<Value> {
    vec![Value::Int64(id), a.map_or(Value::Null, Value::Int64), b.clone().map_or(Value::Null, Value::Text)]
}

fn key(id: i64) -> Vec<u8> {
    encode_key(&[Value::Int64(id)], &[0])
}

#[derive(Debug, Clone)]
enum Op {
    Insert(i64, Row),
    Update(i64, Row),
    Move(i64, i64),
    Delete(i64),
    Upsert(i64, Row),
}

fn row() -> impl Strategy<Value = Row> {
    (proptest::option::weighted(0.8, 0..4i64), proptest::option::weighted(0.7, "[xyz]"))
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..8i64;
    prop_oneof![
        (id.clone(), row()).prop_map(|(i, r)| Op::Insert(i, r)),
        (id.clone(), row()).prop_map(|(i, r)| Op::Update(i, r)),
        (id.clone(), id.clone()).prop_map(|(i, j)| Op::Move(i, j)),
        id.clone().prop_map(Op::Delete),
        (id, row()).prop_map(|(i, r)| Op::Upsert(i, r)),
    ]
}

/// What the model says `op` does to `view`: `Ok(changed)` or the error kind.
fn expect(view: &mut Model, op: &Op) -> Result<bool, &'static str> {
    let repeats = |view: &Model, skip: i64, b: &Option<String>| b.is_some() && view.iter().any(|(&id, (_, ob))| id != skip && ob == b);
    match op {
        Op::Insert(id, r) => {
            if view.contains_key(id) {
                return Err("duplicate");
            }
            if repeats(view, *id, &r.1) {
                return Err("unique");
            }
            view.insert(*id, r.clone());
            Ok(true)
        }
        Op::Update(id, r) | Op::Upsert(id, r) => {
            if !view.contains_key(id) && matches!(op, Op::Update(..)) {
                return Ok(false);
            }
            if repeats(view, *id, &r.1) {
                return Err("unique");
            }
            view.insert(*id, r.clone());
            Ok(true)
        }
        Op::Move(from, to) => {
            let Some(r) = view.get(from).cloned() else { return Ok(false) };
            if from != to && view.contains_key(to) {
                return Err("duplicate");
            }
            view.remove(from);
            view.insert(*to, r);
            Ok(true)
        }
        Op::Delete(id) => Ok(view.remove(id).is_some()),
    }
}

fn apply(txn: &mut Transaction, t: TableId, view: &Model, op: &Op) -> Result<bool, &'static str> {
    let kind = |e: Error| match e {
        Error::DuplicateKey { .. } => "duplicate",
        Error::UniqueViolation { .. } => "unique",
        e => panic!("unexpected error {e}"),
    };
    match op {
        Op::Insert(id, r) => txn.insert(t, values(*id, r)).map(|_| true).map_err(kind),
        Op::Update(id, r) => txn.update(t, &key(*id), values(*id, r)).map_err(kind),
        Op::Upsert(id, r) => txn.upsert(t, values(*id, r)).map(|()| true).map_err(kind),
        Op::Move(from, to) => match view.get(from) {
            Some(r) => txn.update(t, &key(*from), values(*to, r)).map_err(kind),
            None => txn.update(t, &key(*from), values(*to, &(None, None))).map_err(kind),
        },
        Op::Delete(id) => txn.delete(t, &key(*id)).map_err(kind),
    }
}

/// Checks every index read `txn` can make against `view`.
fn check_reads(txn: &Transaction, t: TableId, view: &Model) {
    let ids = |rows: Vec<(Vec<u8>, Vec<Value>)>| {
        rows.into_iter()
            .map(|(_, r)| match r[0] {
                Value::Int64(id) => id,
                ref v => panic!("id {v}"),
            })
            .collect::<Vec<_>>()
    };
    let by_a = |keep: &dyn Fn(Option<i64>) -> bool| {
        let mut m: Vec<(Option<i64>, i64)> = view.iter().filter(|(_, (a, _))| keep(*a)).map(|(&id, (a, _))| (*a, id)).collect();
        // Index order: values ascending, NULLs last, then the primary key.
        m.sort_by_key(|&(a, id)| (a.is_none(), a, id));
        m.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    for v in -1..5 {
        let got = txn.index_scan(t, "items_a", &KeyRange::prefix(vec![Value::Int64(v)]), usize::MAX).unwrap().unwrap();
        assert_eq!(ids(got), by_a(&|a| a == Some(v)), "a = {v}");
        let range = KeyRange { eq: vec![], lo: Bound::Excluded(Value::Int64(v)), hi: Bound::Included(Value::Int64(v + 2)) };
        let got = txn.index_scan(t, "items_a", &range, usize::MAX).unwrap().unwrap();
        assert_eq!(ids(got), by_a(&|a| a.is_some_and(|a| a > v && a <= v + 2)), "{v} < a <= {}", v + 2);
    }
    let got = txn.index_scan(t, "items_a", &KeyRange::prefix(vec![Value::Null]), usize::MAX).unwrap().unwrap();
    assert_eq!(ids(got), by_a(&|a| a.is_none()), "a IS NULL");
    let range = KeyRange { eq: vec![], lo: Bound::Included(Value::Int64(1)), hi: Bound::Unbounded };
    let got = txn.index_scan(t, "items_a", &range, usize::MAX).unwrap().unwrap();
    assert_eq!(ids(got), by_a(&|a| a.is_some_and(|a| a >= 1)), "a >= 1 (no NULLs)");
    for b in ["x", "y", "z"] {
        let got = txn.index_scan(t, "items_b", &KeyRange::prefix(vec![Value::Text(b.into())]), usize::MAX).unwrap().unwrap();
        let want: Vec<i64> = view.iter().filter(|(_, (_, vb))| vb.as_deref() == Some(b)).map(|(&id, _)| id).collect();
        assert_eq!(ids(got), want, "b = {b}");
    }
    let range = KeyRange { eq: vec![], lo: Bound::Included(Value::Int64(2)), hi: Bound::Excluded(Value::Int64(6)) };
    let got = txn.scan_range(t, &range, usize::MAX).unwrap();
    assert_eq!(ids(got), view.keys().copied().filter(|id| (2..6).contains(id)).collect::<Vec<_>>(), "2 <= id < 6");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn indexes_match_the_model(txns in proptest::collection::vec((proptest::collection::vec(op(), 1..6), any::<bool>()), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || Store::open(StoreOptions { dir: Some(dir.path().into()), durability: Durability::Off, ..StoreOptions::default() }).unwrap();
        let store = open();
        let t = create(&store, true);
        let mut committed = Model::new();
        for (ops, commit) in &txns {
            let mut txn = store.begin().unwrap();
            let mut view = committed.clone();
            for op in ops {
                let before = view.clone();
                let want = expect(&mut view, op);
                let got = apply(&mut txn, t, &before, op);
                prop_assert_eq!(got, want, "{:?}", op);
                if want.is_err() {
                    // A failed write changes nothing.
                    view = before;
                }
                check_reads(&txn, t, &view);
            }
            if *commit {
                txn.commit().unwrap();
                committed = view;
            } else {
                txn.rollback();
            }
            check_reads(&store.begin().unwrap(), t, &committed);
        }
        store.close().unwrap();
        drop(store);
        let store = open();
        let (t, _) = store.table("items").unwrap();
        check_reads(&store.begin().unwrap(), t, &committed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Statements under savepoints, some rolled back: the transaction
    /// matches a model that keeps only the statements that were kept, and
    /// so does what it commits.
    #[test]
    fn savepoints_match_the_model(statements in proptest::collection::vec((proptest::collection::vec(op(), 1..5), any::<bool>()), 1..10)) {
        let store = Store::open(StoreOptions::default()).unwrap();
        let t = create(&store, true);
        let mut txn = store.begin().unwrap();
        let mut view = Model::new();
        for (ops, keep) in &statements {
            let at_savepoint = view.clone();
            let savepoint = txn.savepoint();
            for op in ops {
                let before = view.clone();
                let want = expect(&mut view, op);
                prop_assert_eq!(apply(&mut txn, t, &before, op), want, "{:?}", op);
                if want.is_err() {
                    view = before;
                }
            }
            if *keep {
                txn.release_savepoint(savepoint);
            } else {
                txn.rollback_to(savepoint);
                view = at_savepoint;
            }
            check_reads(&txn, t, &view);
        }
        txn.commit().unwrap();
        check_reads(&store.begin().unwrap(), t, &view);
        // Every slot was released: another transaction can write every key.
        let mut other = store.begin().unwrap();
        for id in 0..8 {
            other.delete(t, &key(id)).unwrap();
        }
        other.commit().unwrap();
    }
}

#[test]
fn an_index_built_over_existing_rows_serves_snapshots_from_its_build_on() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, false);
    let mut txn = store.begin().unwrap();
    for id in 0..100 {
        txn.insert(t, values(id, &(Some(id % 7), Some(format!("v{id}"))))).unwrap();
    }
    txn.commit().unwrap();
    let before = store.begin().unwrap();
    store.create_index("items", IndexDef { name: "items_a".into(), columns: vec![1], unique: false }).unwrap();
    store.create_index("items", IndexDef { name: "items_b".into(), columns: vec![2], unique: true }).unwrap();
    let range = KeyRange::prefix(vec![Value::Int64(3)]);
    assert_eq!(before.index_scan(t, "items_a", &range, usize::MAX).unwrap(), None, "older snapshots scan the table");
    let after = store.begin().unwrap();
    assert_eq!(after.index_scan(t, "items_a", &range, usize::MAX).unwrap().unwrap().len(), 14);
    assert_eq!(after.index_scan(t, "items_a", &range, 4).unwrap().unwrap().len(), 4);
    assert_eq!(store.indexes("items").iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["items_a", "items_b"]);

    let mut w = store.begin().unwrap();
    let e = w.insert(t, values(500, &(None, Some("v5".into())))).unwrap_err();
    assert!(matches!(e, Error::UniqueViolation { ref index, .. } if index == "items_b"), "{e}");
    // The failed insert left no row behind.
    assert_eq!(w.get(t, &key(500)).unwrap(), None);
    w.insert(t, values(500, &(None, Some("fresh".into())))).unwrap();
    w.commit().unwrap();

    store.drop_index("items_a").unwrap();
    assert!(matches!(store.drop_index("items_a"), Err(Error::UnknownIndex(_))));
    assert!(matches!(store.begin().unwrap().index_scan(t, "items_a", &range, 1), Err(Error::UnknownIndex(_))));
    assert!(matches!(
        store.create_index("items", IndexDef { name: "items_b".into(), columns: vec![1], unique: false }),
        Err(Error::IndexExists(_))
    ));
    assert!(store.tables().iter().all(|(_, s)| s.name == "items"), "entry tables stay hidden");
}

#[test]
fn a_unique_index_over_repeated_values_is_not_built() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, false);
    let mut txn = store.begin().unwrap();
    txn.insert(t, values(1, &(Some(1), Some("x".into())))).unwrap();
    txn.insert(t, values(2, &(Some(1), Some("x".into())))).unwrap();
    txn.insert(t, values(3, &(None, None))).unwrap();
    txn.insert(t, values(4, &(None, None))).unwrap();
    txn.commit().unwrap();
    let e = store.create_index("items", IndexDef { name: "u".into(), columns: vec![2], unique: true }).unwrap_err();
    assert!(matches!(e, Error::UniqueViolation { .. }), "{e}");
    assert!(store.indexes("items").is_empty());
    // NULLs never repeat: a unique index over (a, b) with rows 3 and 4 builds.
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(2)).unwrap();
    txn.commit().unwrap();
    store.create_index("items", IndexDef { name: "u".into(), columns: vec![1, 2], unique: true }).unwrap();
    let bad = IndexDef { name: "bad".into(), columns: vec![7], unique: false };
    assert!(matches!(store.create_index("items", bad), Err(Error::Schema { .. })));
    assert!(matches!(
        store.create_index("nope", IndexDef { name: "n".into(), columns: vec![0], unique: false }),
        Err(Error::UnknownTable(_))
    ));
}

#[test]
fn concurrent_writers_of_one_unique_value_conflict_and_then_violate() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, true);
    let mut first = store.begin().unwrap();
    let mut second = store.begin().unwrap();
    first.insert(t, values(1, &(None, Some("x".into())))).unwrap();
    let e = second.insert(t, values(2, &(None, Some("x".into())))).unwrap_err();
    assert!(matches!(e, Error::SerializationConflict { ref table } if table == "items"), "{e}");
    first.commit().unwrap();
    let mut third = store.begin().unwrap();
    assert!(matches!(third.insert(t, values(3, &(None, Some("x".into())))), Err(Error::UniqueViolation { .. })));
    // Freeing the value in the same transaction lets it be taken again.
    third.update(t, &key(1), values(1, &(None, Some("y".into())))).unwrap();
    third.insert(t, values(3, &(None, Some("x".into())))).unwrap();
    third.commit().unwrap();
}

#[test]
fn index_ddl_waits_for_open_writers_and_holds_new_ones_back() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, false);
    let mut open_writer = store.begin().unwrap();
    open_writer.insert(t, values(1, &(Some(5), None))).unwrap();
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        open_writer.commit().unwrap();
    });
    // Returns only after the writer committed, so its row has an entry.
    store.create_index("items", IndexDef { name: "items_a".into(), columns: vec![1], unique: false }).unwrap();
    committer.join().unwrap();
    let reader = store.begin().unwrap();
    let got = reader.index_scan(t, "items_a", &KeyRange::prefix(vec![Value::Int64(5)]), usize::MAX).unwrap().unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn inverted_and_empty_ranges_read_nothing() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, true);
    let mut txn = store.begin().unwrap();
    for id in 0..10 {
        txn.insert(t, values(id, &(Some(id), None))).unwrap();
    }
    for (lo, hi) in [
        (Bound::Included(Value::Int64(8)), Bound::Included(Value::Int64(2))),
        (Bound::Excluded(Value::Int64(3)), Bound::Excluded(Value::Int64(3))),
        (Bound::Included(Value::Int64(3)), Bound::Excluded(Value::Int64(3))),
    ] {
        let range = KeyRange { eq: vec![], lo, hi };
        // Read through the transaction's own writes and the committed rows.
        assert!(txn.scan_range(t, &range, usize::MAX).unwrap().is_empty(), "{range:?}");
        assert!(txn.index_scan(t, "items_a", &range, usize::MAX).unwrap().unwrap().is_empty(), "{range:?}");
    }
    txn.commit().unwrap();
    let range = KeyRange { eq: vec![], lo: Bound::Included(Value::Int64(8)), hi: Bound::Included(Value::Int64(2)) };
    assert!(store.begin().unwrap().scan_range(t, &range, usize::MAX).unwrap().is_empty());
}

#[test]
fn a_transaction_whose_writes_all_failed_still_leaves_the_gate() {
    let store = Store::open(StoreOptions::default()).unwrap();
    let t = create(&store, false);
    let mut txn = store.begin().unwrap();
    txn.insert(t, values(1, &(None, None))).unwrap();
    txn.commit().unwrap();
    for end in ["commit", "rollback", "drop"] {
        let mut txn = store.begin().unwrap();
        assert!(matches!(txn.insert(t, values(1, &(None, None))), Err(Error::DuplicateKey { .. })));
        assert!(!txn.delete(t, &key(99)).unwrap());
        match end {
            "commit" => drop(txn.commit().unwrap()),
            "rollback" => txn.rollback(),
            _ => drop(txn),
        }
        // Would wait ten seconds and time out if the gate still counted it.
        let name = format!("items_a_{end}");
        store.create_index("items", IndexDef { name: name.clone(), columns: vec![1], unique: false }).unwrap();
        store.drop_index(&name).unwrap();
    }
}
