//! Scans under a column memory budget against the same scans all hot, in
//! one run: `cargo bench -p omen-colstore --bench tiering`.
//!
//! A table of `OMEN_TIERING_SEGMENTS` (default 40) full segments of eight
//! Int64 columns is written to files (in the page cache: just written) with
//! each codec. For each codec it times, median of 5 after one warm-up:
//! - all hot: no budget, every column in memory;
//! - cold: a budget of the segment metadata (keys, timestamps, zones, which
//!   always stay) plus a tenth of the columns' bytes, so the scanned
//!   columns are ten times what the budget leaves them; with read-ahead
//!   off, then on (two segments ahead).
//!
//! Each scan sums four of the columns. It then replays the access trace of
//! the all-hot scans through the learned policy alone, to put the cost of
//! recording accesses and consulting the model against the scan's time.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use omen_colstore::{ChangeBatch, ChangeOp, Codec, ColumnStore, ColumnStoreOptions, SEGMENT_ROWS};
use omen_tier::trace::TraceReader;
use omen_tier::{PolicyKind, Tier};

const COLUMNS: usize = 8;
const SCANNED: [usize; 4] = [0, 2, 4, 6];
const RUNS: usize = 5;

fn write(dir: &std::path::Path, codec: Codec, segments: usize) {
    let store = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.into()), codec, ..Default::default() }).unwrap();
    let fields: Vec<Field> = (0..COLUMNS).map(|c| Field::new(format!("c{c}"), DataType::Int64, false)).collect();
    let schema = Arc::new(Schema::new(fields));
    let table = store.create_table(1, Arc::clone(&schema)).unwrap();
    for s in 0..segments as i64 {
        let keys = s * SEGMENT_ROWS as i64..(s + 1) * SEGMENT_ROWS as i64;
        // Values with some spread, as real columns have (not all compressible).
        let columns = (0..COLUMNS as i64)
            .map(|c| Arc::new(Int64Array::from_iter_values(keys.clone().map(|k| (k * 2_654_435_761 + c) % 1_000_003))) as ArrayRef)
            .collect();
        let rows = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let ops = keys.clone().enumerate().map(|(row, k)| ChangeOp::Append { row, key: k.to_be_bytes().to_vec(), ts: 1 }).collect();
        table.apply(ChangeBatch { rows, ops }).unwrap();
    }
    store.persist(1).unwrap();
}

fn open(dir: &std::path::Path, budget: Option<u64>, read_ahead: usize, trace: Option<std::path::PathBuf>) -> ColumnStore {
    ColumnStore::open(ColumnStoreOptions { dir: Some(dir.into()), memory_budget: budget, read_ahead, trace, ..Default::default() }).unwrap()
}

fn scan(store: &ColumnStore) -> i64 {
    let scan = store.table(1).unwrap().scan_iter(1, Some(&SCANNED), &[], Arc::new(HashSet::new()), false).unwrap();
    let mut total = 0i64;
    for batch in scan {
        for c in batch.unwrap().columns() {
            total = total.wrapping_add(c.as_primitive::<Int64Type>().values().iter().sum::<i64>());
        }
    }
    total
}

/// The median of `RUNS` timed scans after one warm-up.
fn timed(store: &ColumnStore) -> (Duration, i64) {
    let expect = scan(store);
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(scan(store), expect);
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[RUNS / 2], expect)
}

fn main() {
    let segments: usize = std::env::var("OMEN_TIERING_SEGMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    println!("{segments} segments x {SEGMENT_ROWS} rows x {COLUMNS} Int64 columns; scans of {} columns, median of {RUNS}", SCANNED.len());
    println!(
        "| codec | all hot (s) | cold, read-ahead off (s) | of all hot | cold, read-ahead on (s) | of all hot | hit ratio off / on | budget (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut hot_scan = Duration::ZERO;
    let mut trace_file = None;
    for (name, codec) in [("zstd(1)", Codec::Zstd(1)), ("lz4", Codec::Lz4), ("none", Codec::Uncompressed)] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), codec, segments);
        let trace = dir.path().join("hot.trace");
        let hot = open(dir.path(), None, 0, Some(trace.clone()));
        let (all_hot, expect) = timed(&hot);
        let m = hot.hot_metrics();
        hot.flush_trace().unwrap();
        drop(hot);
        let columns = (segments * SEGMENT_ROWS * COLUMNS * 8) as u64;
        let budget = m.metadata_bytes + columns / 10;
        let mut cold = Vec::new();
        for read_ahead in [0, 2] {
            let store = open(dir.path(), Some(budget), read_ahead, None);
            let (t, sum) = timed(&store);
            assert_eq!(sum, expect);
            cold.push((t, store.hot_metrics().hit_ratio()));
        }
        let ratio = |t: Duration| all_hot.as_secs_f64() / t.as_secs_f64();
        println!(
            "| {name} | {:.4} | {:.4} | {:.0}% | {:.4} | {:.0}% | {:.2} / {:.2} | {:.1} |",
            all_hot.as_secs_f64(),
            cold[0].0.as_secs_f64(),
            100.0 * ratio(cold[0].0),
            cold[1].0.as_secs_f64(),
            100.0 * ratio(cold[1].0),
            cold[0].1,
            cold[1].1,
            budget as f64 / (1 << 20) as f64,
        );
        if trace_file.is_none() {
            hot_scan = all_hot;
            let bytes = std::fs::read(&trace).unwrap();
            trace_file = Some((dir, bytes));
        }
    }
    // The policy's cost: the all-hot scans' accesses (warm-up plus RUNS
    // scans) through the learned policy alone, per scan.
    let (_dir, bytes) = trace_file.unwrap();
    let accesses = TraceReader::new(&bytes[..]).unwrap().read_all().unwrap();
    let scans = (RUNS + 1) as u32;
    let t = Instant::now();
    let mut tier = Tier::new(PolicyKind::Learned.build(u64::MAX), u64::MAX);
    let no_pins = |_| false;
    for a in &accesses {
        if !tier.access(a) {
            tier.admit(a, &no_pins);
        }
    }
    let per_scan = t.elapsed() / scans;
    println!(
        "policy cost: {} accesses a scan through the learned policy take {:.1} us, {:.2}% of an all-hot scan ({:.4} s)",
        accesses.len() as u32 / scans,
        per_scan.as_secs_f64() * 1e6,
        100.0 * per_scan.as_secs_f64() / hot_scan.as_secs_f64(),
        hot_scan.as_secs_f64()
    );
}
