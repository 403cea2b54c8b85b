//! The column store's speed against the column-store issue's targets.
//!
//!   cargo bench -p omen-colstore --features bench-internals --bench colstore
//!
//! `OMEN_COLSTORE_ROWS` (default 100,000,000) sets the size of the table
//! of four BIGINT/DOUBLE columns the scan and SUM/COUNT benches read, with
//! every tenth row updated once (so one version in eleven is dead and
//! scans filter by visibility). Printed once, outside criterion: bytes per
//! row in memory, how many segments zone maps skip for a 1%-selective key
//! range after compaction, compaction's rate, the memory of the two ways to
//! locate a key (a criterion group times them), and for each Parquet codec
//! the bytes per row on disk, the rate of persisting, the time to open a
//! persisted table and to read its columns at the first scan.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow::compute::sum;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use omen_colstore::{ChangeBatch, ChangeOp, Codec, ColumnStore, ColumnStoreOptions, ColumnTable, Predicate, Test};

const CHUNK: usize = 1 << 16;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("c", DataType::Int64, false),
    ]))
}

fn key(k: i64) -> Vec<u8> {
    ((k as u64) ^ (1 << 63)).to_be_bytes().to_vec()
}

fn rows(keys: &[i64], salt: i64) -> RecordBatch {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(keys.to_vec())),
        Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k.wrapping_mul(31) + salt))),
        Arc::new(Float64Array::from_iter_values(keys.iter().map(|&k| k as f64 * 0.5))),
        Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k % 1000))),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

fn empty() -> Arc<ColumnTable> {
    ColumnStore::new().create_table(1, schema()).unwrap()
}

/// Inserts keys `range` at `ts`, a chunk per batch.
fn insert(table: &ColumnTable, range: std::ops::Range<i64>, ts: u64) {
    let keys: Vec<i64> = range.collect();
    for chunk in keys.chunks(CHUNK) {
        let ops = chunk.iter().enumerate().map(|(row, &k)| ChangeOp::Append { row, key: key(k), ts }).collect();
        table.apply(ChangeBatch { rows: rows(chunk, 0), ops }).unwrap();
    }
}

/// One batch updating `keys` at `ts`: end each old version, append the new.
fn updates(keys: &[i64], ts: u64) -> ChangeBatch {
    let mut ops = Vec::with_capacity(2 * keys.len());
    for (row, &k) in keys.iter().enumerate() {
        ops.push(ChangeOp::End { key: key(k), ts });
        ops.push(ChangeOp::Append { row, key: key(k), ts });
    }
    ChangeBatch { rows: rows(keys, ts as i64), ops }
}

/// The big table: `n` rows at ts 1, every tenth updated at ts 2.
fn big_table(n: i64) -> Arc<ColumnTable> {
    let table = empty();
    let started = Instant::now();
    insert(&table, 0..n, 1);
    let tenth: Vec<i64> = (0..n).step_by(10).collect();
    for chunk in tenth.chunks(CHUNK) {
        table.apply(updates(chunk, 2)).unwrap();
    }
    let stats = table.statistics();
    println!(
        "table: {n} rows, {} versions in {} segments, {:.1} bytes per version in memory, built in {:.1} s",
        stats.versions,
        stats.segments,
        stats.bytes as f64 / stats.versions as f64,
        started.elapsed().as_secs_f64()
    );
    table
}

fn benches(c: &mut Criterion) {
    let n: i64 = std::env::var("OMEN_COLSTORE_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000_000);
    let none: Arc<HashSet<Vec<u8>>> = Arc::default();

    // Appends and updates on a table of 1M rows.
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(CHUNK as u64));
    let keys: Vec<i64> = (0..CHUNK as i64).collect();
    g.bench_function("append 64Ki rows", |b| {
        b.iter_batched(
            || {
                (
                    empty(),
                    ChangeBatch {
                        rows: rows(&keys, 0),
                        ops: keys.iter().enumerate().map(|(row, &k)| ChangeOp::Append { row, key: key(k), ts: 1 }).collect(),
                    },
                )
            },
            |(t, batch)| t.apply(batch).unwrap(),
            BatchSize::LargeInput,
        )
    });
    let table = empty();
    insert(&table, 0..1_000_000, 1);
    let mut ts = 1;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    g.bench_function("update 64Ki random rows of 1M (end + append)", |b| {
        b.iter_batched(
            || {
                ts += 1;
                let keys: Vec<i64> = (0..CHUNK)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng % 1_000_000) as i64
                    })
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                updates(&keys, ts)
            },
            |batch| table.apply(batch).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
    drop(table);

    let table = big_table(n);
    let last = 2;
    let stats = table.statistics();
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    // Bytes of the projected columns, every version read.
    g.throughput(Throughput::Bytes(stats.versions as u64 * 16));
    g.bench_function("visible rows of 2 of 4 columns", |b| {
        b.iter(|| {
            let scan = table.scan_iter(last, Some(&[1, 2]), &[], Arc::clone(&none), false).unwrap();
            black_box(scan.map(|b| b.unwrap().num_rows()).sum::<usize>())
        })
    });
    g.throughput(Throughput::Bytes(stats.versions as u64 * 32));
    g.bench_function("SUM of 4 columns and COUNT(*)", |b| {
        b.iter(|| {
            let (mut count, mut ints, mut floats) = (0usize, 0i64, 0f64);
            for batch in table.scan_iter(last, None, &[], Arc::clone(&none), false).unwrap() {
                let batch = batch.unwrap();
                count += batch.num_rows();
                for i in [0, 1, 3] {
                    ints = ints.wrapping_add(sum(batch.column(i).as_any().downcast_ref::<Int64Array>().unwrap()).unwrap_or(0));
                }
                floats += sum(batch.column(2).as_any().downcast_ref::<Float64Array>().unwrap()).unwrap_or(0.0);
            }
            black_box((count, ints, floats))
        })
    });
    g.finish();
    drop(table);

    // Zone maps and compaction on a table a tenth the size, keys inserted
    // in scattered order (every segment spans the key range until
    // compaction sorts it).
    let m = (n / 10).max(1_000_000);
    let table = empty();
    let scattered: Vec<i64> = (0..m).map(|i| (i * 7_919) % m).collect();
    for chunk in scattered.chunks(CHUNK) {
        let ops = chunk.iter().enumerate().map(|(row, &k)| ChangeOp::Append { row, key: key(k), ts: 1 }).collect();
        table.apply(ChangeBatch { rows: rows(chunk, 0), ops }).unwrap();
    }
    for chunk in scattered.iter().copied().step_by(10).collect::<Vec<_>>().chunks(CHUNK) {
        table.apply(updates(chunk, 2)).unwrap();
    }
    let lit = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let one_percent = [Predicate { column: 0, test: Test::Between(lit(m / 2), lit(m / 2 + m / 100 - 1)) }];
    let mut g = c.benchmark_group("zone maps");
    g.sample_size(10);
    g.throughput(Throughput::Elements((m / 100) as u64));
    g.bench_function("1% key range, scattered keys", |b| {
        b.iter(|| black_box(table.scan(last, Some(&[1]), &one_percent, &none, false).unwrap().len()))
    });
    let before = table.segments_matching(&one_percent);
    let started = Instant::now();
    let compacted = table.compact(last).unwrap();
    let took = started.elapsed().as_secs_f64();
    println!(
        "compaction of {m} rows: {} versions read, {} dropped, {} -> {} segments in {took:.2} s ({:.1} M versions/s)",
        compacted.read,
        compacted.dropped,
        compacted.segments_before,
        compacted.segments_after,
        compacted.read as f64 / took / 1e6
    );
    let after = table.segments_matching(&one_percent);
    println!(
        "zone maps, 1% key range: {} of {} segments read before compaction, {} of {} after ({:.1}% skipped)",
        before.0,
        before.1,
        after.0,
        after.1,
        100.0 * (1.0 - after.0 as f64 / after.1 as f64)
    );
    g.bench_function("1% key range, after compaction (key-sorted)", |b| {
        b.iter(|| black_box(table.scan(last, Some(&[1]), &one_percent, &none, false).unwrap().len()))
    });
    g.finish();
    drop(table);

    // Finding a key's row, as updates and deletes do: the hash key map
    // against a learned index per key-sorted segment, over the same m keys.
    let keys: Vec<Vec<u8>> = (0..m).map(key).collect();
    let locators = omen_colstore::locate::Locators::new(&keys).unwrap();
    let probes: Vec<Vec<u8>> = (0..1 << 16).map(|i: i64| key((i * 7_919 * 104_729) % m)).collect();
    for p in &probes {
        assert_eq!(locators.hashed(p), locators.learned(p));
    }
    println!(
        "locating a key among {m}: hash key map {:.1} bytes a key, learned indexes {:.3} bytes a key",
        locators.hashed_bytes() as f64 / m as f64,
        locators.learned_bytes() as f64 / m as f64
    );
    let mut g = c.benchmark_group("locate a key");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("hash key map", |b| b.iter(|| probes.iter().filter(|p| locators.hashed(p).is_some()).count()));
    g.bench_function("learned index per sorted segment", |b| b.iter(|| probes.iter().filter(|p| locators.learned(p).is_some()).count()));
    g.finish();
    drop((locators, keys));

    // Persistence: the same rows written with each codec, then read back.
    let rows_total = m as f64;
    for codec in [Codec::Zstd(1), Codec::Zstd(3), Codec::Lz4, Codec::Uncompressed] {
        let dir = tempfile::tempdir().unwrap();
        let store = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.path().into()), codec, ..Default::default() }).unwrap();
        let t = store.create_table(1, schema()).unwrap();
        insert(&t, 0..m, 1);
        let started = Instant::now();
        let stats = store.persist(1).unwrap();
        let wrote = started.elapsed().as_secs_f64();
        drop((t, store));
        // Opening reads keys, timestamps and zone maps; the first scan
        // reads the columns.
        let started = Instant::now();
        let store = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.path().into()), codec, ..Default::default() }).unwrap();
        let t = store.table(1).unwrap();
        let opened = started.elapsed().as_secs_f64();
        assert_eq!(t.statistics().live_rows, m as usize);
        let started = Instant::now();
        let scanned: usize = t.scan_iter(1, None, &[], Arc::clone(&none), false).unwrap().map(|b| b.unwrap().num_rows()).sum();
        let read = started.elapsed().as_secs_f64();
        assert_eq!(scanned, m as usize);
        println!(
            "persist {codec:?}: {m} rows in {wrote:.2} s ({:.1} M rows/s), {:.1} bytes per row on disk; \
             opening {opened:.2} s, then the first scan reading every column {read:.2} s ({:.1} M rows/s)",
            rows_total / wrote / 1e6,
            stats.bytes_written as f64 / rows_total,
            rows_total / read / 1e6
        );
    }
}

criterion_group!(colstore, benches);
criterion_main!(colstore);
