//! A randomized list-append workload checked in the spirit of Elle
//! (Kingsbury & Alvaro, VLDB 2020).
//!
//! Each key holds a list; transactions read lists and append unique values.
//! Because every value is unique and lists only grow, the history itself
//! reveals each key's version order (the longest list read; every other read
//! must be a prefix of it), who wrote each version, and which version every
//! read saw. From that the checker infers write-write, write-read and
//! read-write (anti-)dependencies between committed transactions and fails on
//! what snapshot isolation forbids:
//! - G1a: a read saw a value of an aborted transaction;
//! - G1b: a read saw a transaction's intermediate state of a key;
//! - G0/G1c: a cycle of write-write and write-read edges;
//! - G-single: a cycle with exactly one read-write edge (read skew).
//!
//! Cycles with two or more read-write edges (write skew, G2) are what SI
//! allows, so they are not reported.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use omen_rowstore::{ColumnDef, DataType, Error, Store, StoreOptions, TableId, TableSchema, Value, encode_key};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Read(u64, Vec<u64>),
    Append(u64, u64),
}

/// One transaction of the history: its operations in order, with results.
#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub(crate) ops: Vec<Op>,
    pub(crate) committed: bool,
}

/// What the checker found, empty when the history is SI.
pub(crate) fn check(history: &[Txn]) -> Vec<String> {
    let mut errors = Vec::new();
    // Who appended each value, and whether it committed.
    let mut writer: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, t) in history.iter().enumerate() {
        for op in &t.ops {
            if let Op::Append(k, v) = op {
                writer.insert((*k, *v), i);
            }
        }
    }
    // Reads that count: those before the transaction's own appends to the key.
    let mut reads: Vec<(usize, u64, &[u64])> = Vec::new();
    for (i, t) in history.iter().enumerate().filter(|(_, t)| t.committed) {
        let mut appended: HashMap<u64, Vec<u64>> = HashMap::new();
        for op in &t.ops {
            match op {
                Op::Append(k, v) => appended.entry(*k).or_default().push(*v),
                Op::Read(k, list) => match appended.get(k) {
                    None => reads.push((i, *k, list)),
                    Some(own) => {
                        if !list.ends_with(own) {
                            errors.push(format!("internal: txn {i} read {list:?} at key {k} after appending {own:?}"));
                        }
                    }
                },
            }
        }
    }
    // Version order per key: the longest read; all others are prefixes.
    let mut order: HashMap<u64, &[u64]> = HashMap::new();
    for &(_, k, list) in &reads {
        let longest = order.entry(k).or_insert(list);
        if list.len() > longest.len() {
            *longest = list;
        }
    }
    for &(i, k, list) in &reads {
        if !order[&k].starts_with(list) {
            errors.push(format!("incompatible order: txn {i} read {list:?} at key {k}, longest is {:?}", order[&k]));
        }
        for v in list {
            match writer.get(&(k, *v)) {
                None => errors.push(format!("garbage read: txn {i} read {v} at key {k}, which nobody appended")),
                Some(&w) if !history[w].committed => errors.push(format!("G1a: txn {i} read {v} at key {k} from aborted txn {w}")),
                Some(_) => {}
            }
        }
        // G1b: the last value read must be its writer's last append to the key.
        if let Some(last) = list.last()
            && let Some(&w) = writer.get(&(k, *last))
            && w != i
        {
            let final_append = history[w].ops.iter().rev().find_map(|op| match op {
                Op::Append(kk, v) if *kk == k => Some(*v),
                _ => None,
            });
            if final_append != Some(*last) {
                errors.push(format!("G1b: txn {i} read {list:?} at key {k}, an intermediate state of txn {w}"));
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }

    // Dependency edges between committed transactions.
    let n = history.len();
    let mut wwr: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    let mut rw: Vec<(usize, usize)> = Vec::new();
    for (&k, list) in &order {
        let w = |v: &u64| writer[&(k, *v)];
        for pair in list.windows(2) {
            let (a, b) = (w(&pair[0]), w(&pair[1]));
            if a != b {
                wwr[a].insert(b);
            }
        }
        for &(r, _, seen) in reads.iter().filter(|(_, kk, _)| *kk == k) {
            if let Some(last) = seen.last()
                && w(last) != r
            {
                wwr[w(last)].insert(r);
            }
            if let Some(next) = list.get(seen.len())
                && w(next) != r
            {
                rw.push((r, w(next)));
            }
        }
    }
    let reach = |from: usize, to: usize| -> bool {
        let mut seen = vec![false; n];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if !std::mem::replace(&mut seen[x], true) {
                stack.extend(wwr[x].iter().copied());
            }
        }
        false
    };
    for (a, succs) in wwr.iter().enumerate() {
        for &b in succs {
            if reach(b, a) {
                errors.push(format!("G0/G1c: cycle of write-write/write-read edges through txns {a} and {b}"));
                return errors;
            }
        }
    }
    for &(a, b) in &rw {
        if reach(b, a) {
            errors.push(format!("G-single: txn {a} read before txn {b}'s write, yet depends on it"));
            return errors;
        }
    }
    errors
}

fn lists_store() -> (Store, TableId) {
    let store = Store::open(StoreOptions::default()).unwrap();
    let schema = TableSchema {
        name: "lists".into(),
        columns: vec![ColumnDef::new("k", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Bytes).not_null()],
        primary_key: vec![0],
    };
    let t = store.create_table(schema).unwrap().0;
    (store, t)
}

fn decode(row: Option<Vec<Value>>) -> Vec<u64> {
    match row.as_deref() {
        Some([_, Value::Bytes(b)]) => b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect(),
        None => Vec::new(),
        Some(other) => panic!("unexpected row {other:?}"),
    }
}

/// Runs `per_thread` random transactions on each of `threads` threads.
fn run(threads: u64, per_thread: usize, keys: u64) -> Vec<Txn> {
    let (store, t) = lists_store();
    let next_value = Arc::new(AtomicU64::new(1));
    let handles: Vec<_> = (0..threads)
        .map(|seed| {
            let store = store.clone();
            let next_value = Arc::clone(&next_value);
            std::thread::spawn(move || {
                let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut rand = move |n: u64| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng % n
                };
                let mut history = Vec::new();
                for _ in 0..per_thread {
                    let mut txn = store.begin().unwrap();
                    let mut ops = Vec::new();
                    let mut failed = false;
                    for _ in 0..1 + rand(4) {
                        let k = rand(keys);
                        let key = encode_key(&[Value::Int64(k as i64)], &[0]);
                        let list = decode(txn.get(t, &key).unwrap());
                        if rand(2) == 0 {
                            ops.push(Op::Read(k, list));
                            continue;
                        }
                        let v = next_value.fetch_add(1, Ordering::Relaxed);
                        ops.push(Op::Append(k, v));
                        let mut bytes: Vec<u8> = list.iter().flat_map(|x| x.to_le_bytes()).collect();
                        bytes.extend_from_slice(&v.to_le_bytes());
                        match txn.upsert(t, vec![Value::Int64(k as i64), Value::Bytes(bytes)]) {
                            Ok(()) => {}
                            Err(Error::SerializationConflict { .. }) => {
                                failed = true;
                                break;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    // Some transactions give up on their own, to exercise G1a.
                    let committed = !failed && rand(10) != 0 && txn.commit().is_ok();
                    history.push(Txn { ops, committed });
                }
                history
            })
        })
        .collect();
    let mut history: Vec<Txn> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    // A final read of every key pins down each key's full version order.
    let txn = store.begin().unwrap();
    let ops = (0..keys).map(|k| Op::Read(k, decode(txn.get(t, &encode_key(&[Value::Int64(k as i64)], &[0])).unwrap()))).collect();
    history.push(Txn { ops, committed: true });
    history
}

#[test]
fn concurrent_list_appends_are_snapshot_isolated() {
    for keys in [3, 8] {
        let history = run(3, 2000, keys);
        let committed = history.iter().filter(|t| t.committed).count();
        assert!(committed > 100, "only {committed} transactions committed");
        let errors = check(&history);
        assert!(errors.is_empty(), "{errors:#?}");
    }
}

// The checker must be able to fail: hand-made histories with each anomaly.

fn txn(ops: Vec<Op>) -> Txn {
    Txn { ops, committed: true }
}

#[test]
fn checker_finds_read_skew() {
    // T1 appends to x and y; T2 reads x after T1 but y before it.
    let history = vec![
        txn(vec![Op::Append(0, 1), Op::Append(1, 2)]),
        txn(vec![Op::Read(0, vec![1]), Op::Read(1, vec![])]),
        txn(vec![Op::Read(1, vec![2])]),
    ];
    let errors = check(&history);
    assert!(errors.iter().any(|e| e.starts_with("G-single")), "{errors:?}");
}

#[test]
fn checker_allows_write_skew() {
    // Each reads the key the other appends to, before the other's append.
    let history = vec![
        txn(vec![Op::Read(0, vec![]), Op::Append(1, 1)]),
        txn(vec![Op::Read(1, vec![]), Op::Append(0, 2)]),
        txn(vec![Op::Read(0, vec![2]), Op::Read(1, vec![1])]),
    ];
    assert_eq!(check(&history), Vec::<String>::new());
}

#[test]
fn checker_finds_write_cycles_aborted_and_intermediate_reads() {
    // G1c: T0 wrote x before T1, but T1 wrote y before T0.
    let g1c = vec![
        txn(vec![Op::Append(0, 1), Op::Append(1, 4)]),
        txn(vec![Op::Append(0, 2), Op::Append(1, 3)]),
        txn(vec![Op::Read(0, vec![1, 2]), Op::Read(1, vec![3, 4])]),
    ];
    assert!(check(&g1c).iter().any(|e| e.starts_with("G0/G1c")), "{:?}", check(&g1c));

    let g1a = vec![Txn { ops: vec![Op::Append(0, 1)], committed: false }, txn(vec![Op::Read(0, vec![1])])];
    assert!(check(&g1a).iter().any(|e| e.starts_with("G1a")));

    let g1b = vec![txn(vec![Op::Append(0, 1), Op::Append(0, 2)]), txn(vec![Op::Read(0, vec![1])]), txn(vec![Op::Read(0, vec![1, 2])])];
    assert!(check(&g1b).iter().any(|e| e.starts_with("G1b")));

    let incompatible =
        vec![txn(vec![Op::Append(0, 1)]), txn(vec![Op::Append(0, 2)]), txn(vec![Op::Read(0, vec![1])]), txn(vec![Op::Read(0, vec![2])])];
    assert!(check(&incompatible).iter().any(|e| e.starts_with("incompatible")));
}
