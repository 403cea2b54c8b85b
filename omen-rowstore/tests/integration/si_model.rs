//! State-machine proptest: random interleavings of several transactions
//! against a model of committed history. Every read must be what snapshot
//! isolation allows (the committed state at the snapshot plus the
//! transaction's own writes), and a write may fail with a serialization
//! conflict exactly when SI requires it: another open transaction holds the
//! key, or a transaction that committed after this one's snapshot wrote it.

use std::collections::{BTreeMap, BTreeSet};

use omen_rowstore::{ColumnDef, DataType, Error, Store, StoreOptions, TableSchema, Transaction, Value, encode_key};
use proptest::prelude::*;

const SLOTS: usize = 3;
const KEYS: i32 = 5;

#[derive(Debug, Clone)]
enum Op {
    Begin(usize),
    Read(usize, i32),
    Upsert(usize, i32, i32),
    Delete(usize, i32),
    Commit(usize),
    Abort(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let key = 0..KEYS;
    prop_oneof![
        2 => slot.clone().prop_map(Op::Begin),
        4 => (slot.clone(), key.clone()).prop_map(|(s, k)| Op::Read(s, k)),
        4 => (slot.clone(), key.clone(), 0..100i32).prop_map(|(s, k, v)| Op::Upsert(s, k, v)),
        2 => (slot.clone(), key).prop_map(|(s, k)| Op::Delete(s, k)),
        2 => slot.clone().prop_map(Op::Commit),
        1 => slot.prop_map(Op::Abort),
    ]
}

struct Open {
    txn: Transaction,
    snapshot: u64,
    /// Own successful writes: `None` deletes.
    writes: BTreeMap<i32, Option<i32>>,
}

fn key(k: i32) -> Vec<u8> {
    encode_key(&[Value::Int32(k)], &[0])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn interleavings_obey_snapshot_isolation(ops in proptest::collection::vec(op(), 1..80)) {
        let store = Store::open(StoreOptions::default()).unwrap();
        let schema = TableSchema {
            name: "t".into(),
            columns: vec![ColumnDef::new("k", DataType::Int32).not_null(), ColumnDef::new("v", DataType::Int32)],
            primary_key: vec![0],
        };
        let (t, ts0) = store.create_table(schema).unwrap();
        // Committed states by commit timestamp, and each commit's write set.
        let mut states: BTreeMap<u64, BTreeMap<i32, i32>> = BTreeMap::from([(ts0, BTreeMap::new())]);
        let mut commits: Vec<(u64, BTreeSet<i32>)> = Vec::new();
        let mut open: Vec<Option<Open>> = (0..SLOTS).map(|_| None).collect();

        for op in ops {
            let slot = match op { Op::Begin(s) | Op::Read(s, _) | Op::Upsert(s, _, _) | Op::Delete(s, _) | Op::Commit(s) | Op::Abort(s) => s };
            if open[slot].is_none() {
                if let Op::Begin(_) = op {} else { continue }
            }
            // What SI says about key k for this slot.
            let held_by_other = |open: &[Option<Open>], k: i32| open.iter().enumerate().any(|(i, o)| i != slot && o.as_ref().is_some_and(|o| o.writes.contains_key(&k)));
            let written_since = |commits: &[(u64, BTreeSet<i32>)], snapshot: u64, k: i32| commits.iter().any(|(ts, keys)| *ts > snapshot && keys.contains(&k));
            let visible = |states: &BTreeMap<u64, BTreeMap<i32, i32>>, o: &Open, k: i32| match o.writes.get(&k) {
                Some(w) => *w,
                None => states.range(..=o.snapshot).next_back().and_then(|(_, s)| s.get(&k).copied()),
            };
            match op {
                Op::Begin(_) => {
                    if open[slot].is_none() {
                        let txn = store.begin().unwrap();
                        let snapshot = txn.snapshot();
                        open[slot] = Some(Open { txn, snapshot, writes: BTreeMap::new() });
                    }
                }
                Op::Read(_, k) => {
                    let o = open[slot].as_ref().unwrap();
                    let got = match o.txn.get(t, &key(k)).unwrap().as_deref() {
                        Some([_, Value::Int32(v)]) => Some(*v),
                        None => None,
                        other => panic!("{other:?}"),
                    };
                    prop_assert_eq!(got, visible(&states, o, k), "read of {} in slot {}", k, slot);
                }
                Op::Upsert(_, k, v) => {
                    let must_conflict = {
                        let o = open[slot].as_ref().unwrap();
                        !o.writes.contains_key(&k) && (held_by_other(&open, k) || written_since(&commits, o.snapshot, k))
                    };
                    let o = open[slot].as_mut().unwrap();
                    match o.txn.upsert(t, vec![Value::Int32(k), Value::Int32(v)]) {
                        Ok(()) => {
                            prop_assert!(!must_conflict, "upsert of {} should conflict", k);
                            o.writes.insert(k, Some(v));
                        }
                        Err(Error::SerializationConflict { .. }) => prop_assert!(must_conflict, "spurious conflict on {}", k),
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Delete(_, k) => {
                    let (was_visible, own, others, since) = {
                        let o = open[slot].as_ref().unwrap();
                        (visible(&states, o, k).is_some(), o.writes.contains_key(&k), held_by_other(&open, k), written_since(&commits, o.snapshot, k))
                    };
                    let o = open[slot].as_mut().unwrap();
                    match o.txn.delete(t, &key(k)) {
                        Ok(found) => {
                            prop_assert_eq!(found, was_visible);
                            prop_assert!(own || !(was_visible && (others || since)), "delete of {} should conflict", k);
                            if found {
                                o.writes.insert(k, None);
                            }
                        }
                        // A key another open transaction holds conflicts even
                        // when this snapshot does not see it (fail fast).
                        Err(Error::SerializationConflict { .. }) => prop_assert!(!own && (others || (was_visible && since)), "spurious conflict on {}", k),
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Commit(_) => {
                    let o = open[slot].take().unwrap();
                    // Deleting a key the snapshot did not have (inserted and
                    // deleted again) leaves nothing behind: not a write.
                    let at_snapshot = states.range(..=o.snapshot).next_back().map(|(_, s)| s.clone()).unwrap_or_default();
                    let keys: BTreeSet<i32> = o.writes.iter().filter(|(k, w)| w.is_some() || at_snapshot.contains_key(k)).map(|(k, _)| *k).collect();
                    // SI: no write-write overlap with a transaction that committed after our snapshot.
                    prop_assert!(!keys.iter().any(|&k| written_since(&commits, o.snapshot, k)));
                    let ts = o.txn.commit().unwrap();
                    if !keys.is_empty() {
                        let mut state = states.values().next_back().cloned().unwrap_or_default();
                        for (k, w) in &o.writes {
                            match w {
                                Some(v) => state.insert(*k, *v),
                                None => state.remove(k),
                            };
                        }
                        states.insert(ts, state);
                        commits.push((ts, keys));
                    }
                }
                Op::Abort(_) => {
                    open[slot].take().unwrap().txn.rollback();
                }
            }
        }
    }
}
