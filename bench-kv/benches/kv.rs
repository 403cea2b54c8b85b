//! Point reads at scale, omen-rowstore against RocksDB in the same run: the
//! durability issue's headline comparison.
//!
//!   bash bench-kv/run.sh [--keys N] [--value BYTES] [--ops N]
//!   (defaults: 10,000,000 keys x 1,024 bytes, 1,000,000 operations a run)
//!
//! Both stores load the same keys (BIGINT 0..N, 8 bytes big-endian for
//! RocksDB) with the same pseudo-random (incompressible) values, stored
//! uncompressed by both, without syncing (omen-rowstore
//! `Durability::Off`, RocksDB with its WAL off), then settle: omen-rowstore
//! writes a checkpoint (the rows move to a memory-mapped run with a learned
//! index and leave memory), RocksDB flushes and compacts. Each run then
//! does uniform reads, Zipfian reads (theta 0.99, hot keys scattered over
//! the key space as YCSB's scrambled Zipfian does) and a 95/5 mix of
//! Zipfian reads and single-row updates, on 1 and 2 threads; every
//! operation is timed. RocksDB gets a 4 GiB block cache and 10-bit bloom
//! filters; omen-rowstore reads through the page cache, which holds the
//! run once warm (the machine has 24 GB). Each figure follows a warm-up of
//! a tenth of the operations.
//!
//! Each step runs in a process of its own (the bench starts itself again):
//! loading omen-rowstore, measuring it, loading RocksDB, measuring it. A
//! process that loaded 10 GB of rows keeps that memory in its allocator
//! after the checkpoint frees the rows, which would leave the page cache
//! too little room for both data sets; a fresh process opens the store
//! from its checkpoint (the runs are mapped, nothing is replayed).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use omen_rowstore::{ColumnDef, DataType, Durability, Store, StoreOptions, TableId, TableSchema, Value, encode_key};

struct Args {
    keys: u64,
    value: usize,
    ops: usize,
    /// Set in the child processes the driver runs: which step, and where.
    phase: Option<(String, std::path::PathBuf)>,
}

fn args() -> Args {
    let mut a = Args { keys: 10_000_000, value: 1024, ops: 1_000_000, phase: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--keys" | "--value" | "--ops" => {
                let n = it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
                match flag.as_str() {
                    "--keys" => a.keys = n,
                    "--value" => a.value = n as usize,
                    _ => a.ops = n as usize,
                }
            }
            "--phase" => {
                let (step, dir) = (it.next().unwrap(), it.next().unwrap());
                a.phase = Some((step, dir.into()));
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// xorshift64*, and uniform floats from it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The value stored under `key` (and written by updates): pseudo-random
/// bytes, so neither store gains from compressing them.
fn value(key: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// YCSB's Zipfian generator over ranks `0..n` (Gray et al., SIGMOD 1994),
/// with ranks scattered over the keys by a hash (YCSB's "scrambled").
struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    fn new(n: u64, theta: f64) -> Self {
        let zetan: f64 = (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Self { n, theta, alpha: 1.0 / (1.0 - theta), zetan, eta }
    }

    fn key(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + 0.5f64.powf(self.theta) {
            1
        } else {
            ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        };
        // FNV-1a of the rank spreads the hot keys over the key space.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in rank.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h % self.n
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Uniform,
    Zipf,
    Mix,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Uniform => "uniform reads",
            Workload::Zipf => "Zipfian reads (0.99)",
            Workload::Mix => "95/5 Zipfian reads/updates",
        }
    }
}

/// A system under test: one operation at a time, per thread.
trait Kv: Sync {
    fn read(&self, key: u64) -> usize;
    fn update(&self, key: u64, value: Vec<u8>);
}

struct Omen {
    store: Store,
    table: TableId,
}

impl Kv for Omen {
    fn read(&self, key: u64) -> usize {
        let txn = self.store.begin().unwrap();
        match txn.get(self.table, &encode_key(&[Value::Int64(key as i64)], &[0])).unwrap() {
            Some(row) => match &row[1] {
                Value::Bytes(v) => v.len(),
                other => panic!("{other:?}"),
            },
            None => panic!("key {key} missing"),
        }
    }

    fn update(&self, key: u64, value: Vec<u8>) {
        let k = encode_key(&[Value::Int64(key as i64)], &[0]);
        loop {
            let mut txn = self.store.begin().unwrap();
            let updated = txn.update(self.table, &k, vec![Value::Int64(key as i64), Value::Bytes(value.clone())]);
            match updated.and_then(|_| txn.commit()) {
                Ok(_) => return,
                Err(omen_rowstore::Error::SerializationConflict { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

struct Rocks {
    db: rocksdb::DB,
    write: rocksdb::WriteOptions,
}

impl Kv for Rocks {
    fn read(&self, key: u64) -> usize {
        self.db.get(key.to_be_bytes()).unwrap().unwrap_or_else(|| panic!("key {key} missing")).len()
    }

    fn update(&self, key: u64, value: Vec<u8>) {
        self.db.put_opt(key.to_be_bytes(), value, &self.write).unwrap();
    }
}

struct Figures {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn measure(kv: &dyn Kv, workload: Workload, threads: usize, args: &Args, zipf: &Zipf) -> Figures {
    let per_thread = args.ops / threads;
    let barrier = std::sync::Barrier::new(threads);
    let (mut lat, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
                    let op = |rng: &mut Rng| {
                        let key = match workload {
                            Workload::Uniform => rng.next() % args.keys,
                            Workload::Zipf | Workload::Mix => zipf.key(rng),
                        };
                        if workload == Workload::Mix && rng.next() % 100 < 5 {
                            kv.update(key, value(rng.next(), args.value));
                        } else {
                            std::hint::black_box(kv.read(key));
                        }
                    };
                    for _ in 0..per_thread / 10 {
                        op(&mut rng);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let mut lat = Vec::with_capacity(per_thread);
                    for _ in 0..per_thread {
                        let t = Instant::now();
                        op(&mut rng);
                        lat.push(t.elapsed());
                    }
                    (lat, start.elapsed())
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut wall = Duration::ZERO;
        for h in handles {
            let (lat, w) = h.join().unwrap();
            all.extend(lat);
            wall = wall.max(w);
        }
        (all, wall)
    });
    lat.sort_unstable();
    Figures { ops_per_sec: lat.len() as f64 / wall.as_secs_f64(), p50: lat[lat.len() / 2], p99: lat[lat.len() * 99 / 100] }
}

fn open_omen(dir: &Path) -> Store {
    Store::open(StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability: Durability::Off,
        checkpoint_wal_bytes: 0,
        ..StoreOptions::default()
    })
    .unwrap()
}

fn load_omen(dir: &Path, args: &Args) {
    let store = open_omen(dir);
    let schema = TableSchema {
        name: "kv".into(),
        columns: vec![ColumnDef::new("k", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Bytes)],
        primary_key: vec![0],
    };
    let (table, _) = store.create_table(schema).unwrap();
    let start = Instant::now();
    for chunk in (0..args.keys).step_by(10_000) {
        let mut txn = store.begin().unwrap();
        for k in chunk..(chunk + 10_000).min(args.keys) {
            txn.insert(table, vec![Value::Int64(k as i64), Value::Bytes(value(k, args.value))]).unwrap();
        }
        txn.commit().unwrap();
    }
    let loaded = start.elapsed();
    let start = Instant::now();
    let info = store.checkpoint().unwrap();
    println!(
        "omen-rowstore: loaded {} keys in {:.1} s, checkpoint of {} MiB in {:.1} s; {} keys left in memory",
        args.keys,
        loaded.as_secs_f64(),
        info.run_bytes >> 20,
        start.elapsed().as_secs_f64(),
        store.stats().keys
    );
}

fn rocks_options() -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(4 << 30));
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts
}

fn open_rocks(dir: &Path) -> Rocks {
    let mut write = rocksdb::WriteOptions::default();
    write.disable_wal(true);
    Rocks { db: rocksdb::DB::open(&rocks_options(), dir).unwrap(), write }
}

fn load_rocks(dir: &Path, args: &Args) {
    let Rocks { db, write } = open_rocks(dir);
    let start = Instant::now();
    for chunk in (0..args.keys).step_by(10_000) {
        let mut batch = rocksdb::WriteBatch::default();
        for k in chunk..(chunk + 10_000).min(args.keys) {
            batch.put(k.to_be_bytes(), value(k, args.value));
        }
        db.write_opt(batch, &write).unwrap();
    }
    let loaded = start.elapsed();
    let start = Instant::now();
    db.flush().unwrap();
    db.compact_range::<&[u8], &[u8]>(None, None);
    println!(
        "RocksDB: loaded {} keys in {:.1} s, flush and compaction {:.1} s",
        args.keys,
        loaded.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

fn micros(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

const WORKLOADS: [Workload; 3] = [Workload::Uniform, Workload::Zipf, Workload::Mix];

/// Measures every workload on 1 and 2 threads; prints one `RESULT` line each.
fn measure_all(kv: &dyn Kv, args: &Args) {
    let zipf = Zipf::new(args.keys, 0.99);
    for (w, workload) in WORKLOADS.into_iter().enumerate() {
        for threads in [1, 2] {
            let f = measure(kv, workload, threads, args, &zipf);
            println!("RESULT {w} {threads} {:.0} {} {}", f.ops_per_sec, micros(f.p50), micros(f.p99));
        }
    }
}

/// Runs one step in a child process; returns its `RESULT` lines (and
/// prints the rest of its output).
fn step(step: &str, dir: &Path, args: &Args) -> Vec<Vec<String>> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--keys", &args.keys.to_string(), "--value", &args.value.to_string(), "--ops", &args.ops.to_string()])
        .args(["--phase", step, dir.to_str().unwrap()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "step {step} failed");
    let mut results = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        match line.strip_prefix("RESULT ") {
            Some(r) => results.push(r.split(' ').map(str::to_owned).collect()),
            None => println!("{line}"),
        }
    }
    results
}

fn main() {
    let args = args();
    if let Some((phase, dir)) = &args.phase {
        match phase.as_str() {
            "omen-load" => load_omen(dir, &args),
            "omen-measure" => {
                let store = open_omen(dir);
                let (table, _) = store.table("kv").unwrap();
                measure_all(&Omen { store, table }, &args);
            }
            "rocks-load" => load_rocks(dir, &args),
            "rocks-measure" => measure_all(&open_rocks(dir), &args),
            other => panic!("unknown phase {other}"),
        }
        return;
    }
    println!(
        "{} keys x {} bytes, {} operations a run, {} cores",
        args.keys,
        args.value,
        args.ops,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let (omen_dir, rocks_dir) = (dir.path().join("omen"), dir.path().join("rocks"));
    step("omen-load", &omen_dir, &args);
    let omen = step("omen-measure", &omen_dir, &args);
    step("rocks-load", &rocks_dir, &args);
    let rocks = step("rocks-measure", &rocks_dir, &args);
    println!();
    println!("| workload | threads | omen-rowstore ops/s | RocksDB ops/s | ratio | omen p50 / p99 (us) | RocksDB p50 / p99 (us) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (o, r) in omen.iter().zip(&rocks) {
        let ratio = o[2].parse::<f64>().unwrap() / r[2].parse::<f64>().unwrap();
        let workload = WORKLOADS[o[0].parse::<usize>().unwrap()].name();
        println!("| {workload} | {} | {} | {} | {ratio:.2} | {} / {} | {} / {} |", o[1], o[2], r[2], o[3], o[4], r[3], r[4]);
    }
}
