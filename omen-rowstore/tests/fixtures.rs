//! The row store's files as each format version wrote them
//! (`tests/fixtures/rowstore/vN/` at the repository's root; see the README
//! there): every version still opens and reads as it was written.
//!
//! One data set serves every version ([`write_data_set`]): four tables
//! (primary-keyed, keyless with a column of every type, composite-keyed,
//! one dropped), secondary indexes, inserts, updates and deletes, two
//! checkpoints (runs with a tombstone and Bloom filters, a manifest naming
//! a dropped table), and after them a log tail of commits, index DDL, a
//! table created and dropped, and an ALTER TABLE, not checkpointed, in a
//! zero-filled (preallocated) segment. The checks open a copy of each
//! directory and read every table, index and log record back, and read
//! each file by hand (magic, version, framing, checksums).
//!
//! `write_fixtures` writes the current version's directory:
//!
//!   OMENDB_WRITE_FIXTURES=1 cargo test -p omen-rowstore --test fixtures -- --ignored
#![allow(clippy::unwrap_used, missing_docs)]

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Duration;

use omen_rowstore::{
    Alteration, Change, ChangeOp, ColumnDef, DataType, Durability, Error, IndexDef, KeyRange, Store, StoreOptions, TableId, TableSchema,
    Ts, Value, encode_key, encode_row_id,
};

/// Log segments of 2 KiB: the spare a roll takes (zero-filled ahead, the
/// size of a segment at most) is 2 KiB, where the default's first is 1 MiB.
const WAL_SEGMENT_BYTES: u64 = 2048;

// The data set's tables and timestamps (every DDL and commit takes the
// next timestamp; an ALTER TABLE three).
const ACCOUNTS: TableId = 1;
const EVERY_TYPE: TableId = 2;
const SCRATCH: TableId = 3;
const PAIRS: TableId = 5;
const NOTES: TableId = 8;
/// `pairs` as ALTER TABLE rewrote it.
const PAIRS_ALTERED: TableId = 9;
const FIRST_CHECKPOINT: Ts = 6;
/// After the first checkpoint: the manifest keeps its schema (retired).
const SCRATCH_DROPPED: Ts = 7;
const CHECKPOINT: Ts = 11;
const ALTER: Ts = 20;
const LAST: Ts = 21;

/// The log records after the checkpoint: (kind byte, timestamp).
const LOG_TAIL: [(u8, Ts); 8] = [(1, 12), (4, 13), (5, 14), (2, 15), (1, 16), (3, 17), (6, ALTER), (1, LAST)];

/// The runs the manifest names: (file, entries, tombstones).
const RUNS: [(&str, u64, u64); 5] = [
    ("run-0000000001-00000000000000000011.omr", 32, 1),
    ("run-0000000001-00000000000000000006.omr", 39, 0),
    ("run-0000000002-00000000000000000011.omr", 2, 0),
    ("run-0000000002-00000000000000000006.omr", 3, 0),
    ("run-0000000005-00000000000000000011.omr", 4, 0),
];

fn accounts_schema() -> TableSchema {
    TableSchema {
        name: "accounts".into(),
        columns: vec![
            ColumnDef::new("id", DataType::Int64).not_null(),
            ColumnDef::new("balance", DataType::Int64).not_null(),
            ColumnDef { default: Some(Value::Text("bank".into())), ..ColumnDef::new("owner", DataType::Text) },
        ],
        primary_key: vec![0],
    }
}

fn owner(id: i64) -> Value {
    match id % 4 {
        0 => Value::Null,
        1 => Value::Text("ann".into()),
        2 => Value::Text("bob".into()),
        _ => Value::Text("cy".into()),
    }
}

fn account(id: i64, balance: i64) -> Vec<Value> {
    vec![Value::Int64(id), Value::Int64(balance), owner(id)]
}

fn account_key(id: i64) -> Vec<u8> {
    encode_key(&[Value::Int64(id)], &[0])
}

/// Accounts 1 to 40 are inserted with balance 100 x id, 41 to 71 later;
/// 3, 4 and 6 are deleted; 1, 2 and 5 updated (balance + 1).
fn final_accounts() -> Vec<Vec<Value>> {
    let ids = (1..=71).filter(|id| ![3, 4, 6].contains(id));
    ids.map(|id| account(id, 100 * id + i64::from([1, 2, 5].contains(&id)))).collect()
}

fn owner_index() -> IndexDef {
    IndexDef { name: "accounts_owner".into(), columns: vec![2], unique: false }
}

fn every_type_schema() -> TableSchema {
    use DataType::*;
    let types = [
        ("b", Bool),
        ("i16", Int16),
        ("i32", Int32),
        ("i64", Int64),
        ("f32", Float32),
        ("f64", Float64),
        ("dec", Decimal { precision: 20, scale: 4 }),
        ("txt", Text),
        ("bin", Bytes),
        ("day", Date),
        ("at", Timestamp),
        ("at_tz", TimestampTz),
    ];
    let mut columns: Vec<ColumnDef> = types.into_iter().map(|(name, t)| ColumnDef::new(name, t)).collect();
    columns[6].default = Some(Value::Decimal { unscaled: 15_000, scale: 4 });
    TableSchema { name: "every_type".into(), columns, primary_key: vec![] }
}

/// A row of `every_type` with every value set, from `seed`.
fn typed(seed: i64) -> Vec<Value> {
    vec![
        Value::Bool(seed % 2 == 0),
        Value::Int16(-3 * seed as i16),
        Value::Int32(1000 * seed as i32),
        Value::Int64(seed * 1_000_000_000_000),
        Value::Float32(seed as f32 / 4.0),
        Value::Float64(-(seed as f64) * 1e-3),
        Value::Decimal { unscaled: 12_345 * i128::from(seed), scale: 4 },
        Value::Text(format!("row {seed}")),
        Value::Bytes(vec![seed as u8, 0, 255]),
        Value::Date(365 * seed as i32),
        Value::Timestamp(seed * 86_400_000_000),
        Value::TimestampTz(-seed),
    ]
}

/// [`typed`] with every other column NULL.
fn sparse(seed: i64) -> Vec<Value> {
    typed(seed).into_iter().enumerate().map(|(i, v)| if i % 2 == 0 { v } else { Value::Null }).collect()
}

fn extremes() -> Vec<Value> {
    vec![
        Value::Bool(true),
        Value::Int16(i16::MIN),
        Value::Int32(i32::MAX),
        Value::Int64(i64::MIN),
        Value::Float32(f32::INFINITY),
        Value::Float64(f64::MIN_POSITIVE),
        Value::Decimal { unscaled: 10i128.pow(20) - 1, scale: 4 },
        Value::Text("héllo\0wörld".into()),
        Value::Bytes(Vec::new()),
        Value::Date(-719_162),
        Value::Timestamp(i64::MAX),
        Value::TimestampTz(i64::MIN),
    ]
}

/// `every_type`'s rows by row id: 1 to 3 inserted, 2 updated, 4 inserted, 1 deleted.
fn final_every_type() -> Vec<(u64, Vec<Value>)> {
    vec![(2, typed(2)), (3, extremes()), (4, sparse(4))]
}

fn pairs_schema() -> TableSchema {
    TableSchema {
        name: "pairs".into(),
        columns: vec![
            ColumnDef::new("name", DataType::Text).not_null(),
            ColumnDef::new("n", DataType::Int32).not_null(),
            ColumnDef::new("score", DataType::Float64),
        ],
        primary_key: vec![0, 1],
    }
}

fn pair(name: &str, n: i32, score: Option<f64>) -> Vec<Value> {
    vec![Value::Text(name.into()), Value::Int32(n), score.map_or(Value::Null, Value::Float64)]
}

fn pair_key(name: &str, n: i32) -> Vec<u8> {
    encode_key(&[Value::Text(name.into()), Value::Int32(n)], &[0, 1])
}

/// The rows of `pairs` before the log tail, in key order (an empty name,
/// and a name with a NUL byte, whose key escapes it).
fn first_pairs() -> Vec<Vec<Value>> {
    vec![pair("", 4, None), pair("a", 1, Some(0.5)), pair("a\0b", 2, Some(-1.25)), pair("ab", 3, Some(1e300))]
}

fn pairs_index() -> IndexDef {
    IndexDef { name: "pairs_n".into(), columns: vec![1], unique: true }
}

fn pairs_alterations() -> [Alteration; 2] {
    [
        Alteration::AddColumn(ColumnDef { default: Some(Value::Text("old".into())), ..ColumnDef::new("tag", DataType::Text) }),
        Alteration::RenameColumn { from: "score".into(), to: "points".into() },
    ]
}

fn altered_pairs_schema() -> TableSchema {
    let mut schema = pairs_schema();
    schema.columns[2].name = "points".into();
    schema.columns.push(ColumnDef { default: Some(Value::Text("old".into())), ..ColumnDef::new("tag", DataType::Text) });
    schema
}

fn tagged(mut row: Vec<Value>, tag: &str) -> Vec<Value> {
    row.push(Value::Text(tag.into()));
    row
}

/// `pairs` after the ALTER and the commit after it, in key order.
fn final_pairs() -> Vec<Vec<Value>> {
    let mut rows: Vec<Vec<Value>> = first_pairs().into_iter().map(|r| tagged(r, "old")).collect();
    rows[1] = tagged(pair("a", 1, Some(0.5)), "changed");
    rows.push(tagged(pair("b", 5, Some(2.0)), "old"));
    rows.push(tagged(pair("c", 6, Some(3.0)), "new"));
    rows
}

fn notes_schema() -> TableSchema {
    TableSchema { name: "notes".into(), columns: vec![ColumnDef::new("note", DataType::Text).not_null()], primary_key: vec![] }
}

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability: Durability::Full,
        gc_interval: Duration::ZERO,
        wal_segment_bytes: WAL_SEGMENT_BYTES,
        checkpoint_wal_bytes: 0,
        memory_budget: 0,
        ..StoreOptions::default()
    }
}

/// Runs `writes` in a transaction and checks its commit timestamp.
fn commit(store: &Store, ts: Ts, writes: impl FnOnce(&mut omen_rowstore::Transaction)) {
    let mut txn = store.begin().unwrap();
    writes(&mut txn);
    assert_eq!(txn.commit().unwrap(), ts);
}

/// Writes the data set into the empty directory `dir` with the current
/// writer: the files are what a store left after a clean close.
fn write_data_set(dir: &Path) {
    let store = Store::open(options(dir)).unwrap();
    assert_eq!(store.create_table(accounts_schema()).unwrap(), (ACCOUNTS, 1));
    assert_eq!(store.create_table(every_type_schema()).unwrap(), (EVERY_TYPE, 2));
    let scratch = TableSchema { name: "scratch".into(), ..accounts_schema() };
    assert_eq!(store.create_table(scratch).unwrap(), (SCRATCH, 3));
    assert_eq!(store.create_index("accounts", owner_index()).unwrap(), 4);
    commit(&store, 5, |txn| {
        for id in 1..=40 {
            txn.insert(ACCOUNTS, account(id, 100 * id)).unwrap();
        }
        for row in [typed(1), vec![Value::Null; 12], extremes()] {
            txn.insert(EVERY_TYPE, row).unwrap();
        }
        txn.insert(SCRATCH, account(1, 1)).unwrap();
    });
    commit(&store, 6, |txn| {
        txn.update(ACCOUNTS, &account_key(2), account(2, 201)).unwrap();
        txn.delete(ACCOUNTS, &account_key(3)).unwrap();
    });
    assert_eq!(store.checkpoint().unwrap().ts, FIRST_CHECKPOINT);

    assert_eq!(store.drop_table("scratch").unwrap(), SCRATCH);
    assert_eq!(store.current_ts(), SCRATCH_DROPPED);
    assert_eq!(store.create_table(pairs_schema()).unwrap(), (PAIRS, 8));
    let balance = IndexDef { name: "accounts_balance".into(), columns: vec![1], unique: true };
    assert_eq!(store.create_index("accounts", balance).unwrap(), 9);
    commit(&store, 10, |txn| {
        for row in first_pairs() {
            txn.insert(PAIRS, row).unwrap();
        }
    });
    // More than half a segment in one record: wherever it lands, the
    // segment then asks for its successor, made ahead (zero-filled) in the
    // background. The checkpoint's roll takes it once it is ready, so the
    // log tail goes into zero-filled room, as a store's log mostly does.
    commit(&store, CHECKPOINT, |txn| {
        txn.delete(ACCOUNTS, &account_key(4)).unwrap();
        txn.update(ACCOUNTS, &account_key(5), account(5, 501)).unwrap();
        for id in 41..=70 {
            txn.insert(ACCOUNTS, account(id, 100 * id)).unwrap();
        }
        txn.update(EVERY_TYPE, &encode_row_id(2), typed(2)).unwrap();
        txn.insert(EVERY_TYPE, sparse(4)).unwrap();
    });
    // The spare is ready a moment after its file is named (the directory
    // synced); `write_fixtures` checks that the roll took it. The bound
    // only stops a hang.
    for _ in 0..5000 {
        if dir.join("wal-spare").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(store.checkpoint().unwrap().ts, CHECKPOINT);

    commit(&store, 12, |txn| {
        txn.insert(ACCOUNTS, account(71, 7100)).unwrap();
        txn.update(ACCOUNTS, &account_key(1), account(1, 101)).unwrap();
        txn.delete(ACCOUNTS, &account_key(6)).unwrap();
        txn.delete(EVERY_TYPE, &encode_row_id(1)).unwrap();
    });
    assert_eq!(store.create_index("pairs", pairs_index()).unwrap(), 13);
    store.drop_index("accounts_balance").unwrap();
    assert_eq!(store.create_table(notes_schema()).unwrap(), (NOTES, 15));
    commit(&store, 16, |txn| {
        txn.insert(NOTES, vec![Value::Text("first".into())]).unwrap();
        txn.insert(NOTES, vec![Value::Text("second".into())]).unwrap();
        txn.insert(PAIRS, pair("b", 5, Some(2.0))).unwrap();
    });
    assert_eq!(store.drop_table("notes").unwrap(), NOTES);
    assert_eq!(store.alter_table("pairs", &pairs_alterations()).unwrap(), ALTER);
    assert_eq!(store.table("pairs").unwrap().0, PAIRS_ALTERED);
    commit(&store, LAST, |txn| {
        txn.update(PAIRS_ALTERED, &pair_key("a", 1), tagged(pair("a", 1, Some(0.5)), "changed")).unwrap();
        txn.insert(PAIRS_ALTERED, tagged(pair("c", 6, Some(3.0)), "new")).unwrap();
    });
    store.close().unwrap();
}

/// The store's own files in `dir`: the manifest, runs and log segments
/// (not `wal-spare`, zeros made ahead for the next segment, which opening
/// removes and remakes).
fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap() != "wal-spare").collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let known = name == "MANIFEST" || (name.starts_with("run-") && name.ends_with(".omr")) || is_segment(f);
        assert!(known, "{} is not a file of the row store", f.display());
    }
    files
}

fn is_segment(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.starts_with("wal-") && name.ends_with(".log")
}

fn copy_files(files: &[PathBuf], to: &Path) {
    for f in files {
        std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
    }
}

fn fixtures_root() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    crate_dir.join("../tests/fixtures/rowstore")
}

/// The fixture directories `vN`, oldest first.
fn version_dirs() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(fixtures_root()) else { return Vec::new() };
    let mut dirs: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| {
            let path = e.unwrap().path();
            let n = path.file_name()?.to_str()?.strip_prefix('v')?.parse().ok()?;
            Some((n, path))
        })
        .collect();
    dirs.sort();
    dirs
}

/// [`version_dirs`], which the tests need at least one of.
fn fixtures() -> Vec<(u32, PathBuf)> {
    let dirs = version_dirs();
    assert!(!dirs.is_empty(), "no fixtures under {}", fixtures_root().display());
    dirs
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// The format version in a file's header: every file of the store starts
/// `| magic (8) | version: u32 LE | reserved: u32 (0) |`.
fn header(bytes: &[u8], magic: &[u8; 8]) -> u32 {
    assert_eq!(&bytes[..8], magic);
    assert_eq!(u32_at(bytes, 12), 0, "reserved header bytes");
    u32_at(bytes, 8)
}

/// What a log segment holds, read by hand.
struct Segment {
    /// (kind byte, timestamp) of each record.
    records: Vec<(u8, Ts)>,
    /// Where the records end: zeros (room made ahead) follow to the end.
    end: usize,
}

/// Reads a log segment of version 1: `| len: u32 | crc32c: u32 | payload |`
/// records, each payload `| kind: u8 | ts: u64 | ... |`, then zeros.
fn read_segment(bytes: &[u8]) -> Segment {
    let version = header(bytes, b"OMENWAL\0");
    assert_eq!(version, 1, "no reader in this test for log version {version}: add one");
    let (mut pos, mut records) = (16, Vec::new());
    while pos + 8 <= bytes.len() && u32_at(bytes, pos) != 0 {
        let payload = &bytes[pos + 8..pos + 8 + u32_at(bytes, pos) as usize];
        assert_eq!(crc32c::crc32c(payload), u32_at(bytes, pos + 4), "record at {pos}");
        records.push((payload[0], u64_at(payload, 1)));
        pos += 8 + payload.len();
    }
    assert!(bytes[pos..].iter().all(|&b| b == 0), "only zeros follow the last record");
    Segment { records, end: pos }
}

/// What a run holds, read by hand.
struct RunFile {
    table: TableId,
    ts: Ts,
    entries: u64,
    tombstones: u64,
    /// The first byte of its first row: the row format's version.
    row_version: u8,
}

/// Reads a run of version 3 (see `src/run.rs`): entries, offsets,
/// prefixes, block checksums, Bloom filter, learned index, footer.
fn read_run(bytes: &[u8]) -> RunFile {
    let version = header(bytes, b"OMENRUN\0");
    assert_eq!(version, 3, "no reader in this test for run version {version}: add one");
    let footer_at = bytes.len() - 72;
    let footer = &bytes[footer_at..];
    assert_eq!(&footer[64..], b"OMENRUNF");
    assert_eq!(crc32c::crc32c(&footer[..60]), u32_at(footer, 60), "footer checksum");
    let field = |i: usize| u64_at(footer, 8 * i);
    let (table, ts, n) = (field(0), field(1), field(2));
    let [offsets_at, prefixes_at, blocks_at, index_at] = [3, 4, 5, 6].map(|i| field(i) as usize);
    let checked = crc32c::crc32c_append(crc32c::crc32c(&bytes[..16]), &bytes[offsets_at..footer_at]);
    assert_eq!(checked, u32_at(footer, 56), "checksum of the header and the sections after the entries");
    // Small runs: their entries are one 64 KiB block.
    assert!(offsets_at - 16 <= 64 << 10);
    assert_eq!(crc32c::crc32c(&bytes[16..offsets_at]), u32_at(bytes, blocks_at), "the entries' block checksum");
    let filter = index_at - (blocks_at + 4);
    assert_eq!(filter, 32 * (n as usize * 10).div_ceil(256).max(1), "a 32-byte block of Bloom filter per 25.6 keys");
    assert!(index_at < footer_at, "a learned index");

    let (mut pos, mut tombstones, mut row_version, mut last) = (16, 0, None, None::<&[u8]>);
    for i in 0..n as usize {
        assert_eq!(u64_at(bytes, offsets_at + 8 * i), pos as u64, "entry {i}'s offset");
        let (klen, rlen) = (u32_at(bytes, pos) as usize, u32_at(bytes, pos + 4));
        let key = &bytes[pos + 8..pos + 8 + klen];
        assert!(last.is_none_or(|last| last < key), "keys ascend");
        let mut prefix = [0; 8];
        prefix[..klen.min(8)].copy_from_slice(&key[..klen.min(8)]);
        assert_eq!(u64_at(bytes, prefixes_at + 8 * i), u64::from_be_bytes(prefix), "entry {i}'s key prefix");
        pos += 8 + klen;
        if rlen == u32::MAX {
            tombstones += 1;
        } else {
            row_version.get_or_insert(bytes[pos]);
            pos += rlen as usize;
        }
        last = Some(key);
    }
    assert_eq!(pos, offsets_at, "the entries end where the offsets start");
    RunFile { table, ts, entries: n, tombstones, row_version: row_version.expect("a run with a row") }
}

/// The manifest's timestamp and next table id, read by hand, and its body.
fn read_manifest(bytes: &[u8]) -> (Ts, TableId, &[u8]) {
    let version = header(bytes, b"OMENMAN\0");
    assert_eq!(version, 2, "no reader in this test for manifest version {version}: add one");
    let (checked, crc) = bytes.split_at(bytes.len() - 4);
    assert_eq!(crc32c::crc32c(checked), u32_at(crc, 0), "manifest checksum");
    (u64_at(bytes, 16), u64_at(bytes, 24), &checked[16..])
}

/// The format versions of the files in a directory.
#[derive(Debug, PartialEq, Eq)]
struct Versions {
    wal: u32,
    run: u32,
    manifest: u32,
    row: u8,
}

fn versions(dir: &Path) -> Versions {
    let files = store_files(dir);
    let one = |of: &mut dyn Iterator<Item = u32>| {
        let all: Vec<u32> = of.collect();
        assert!(!all.is_empty() && all.iter().all(|&v| v == all[0]), "{all:?} in {}", dir.display());
        all[0]
    };
    let read = |f: &PathBuf| std::fs::read(f).unwrap();
    let header_version = |f: &PathBuf| u32_at(&read(f), 8);
    let runs = || files.iter().filter(|f| f.extension().is_some_and(|e| e == "omr"));
    Versions {
        wal: one(&mut files.iter().filter(|f| is_segment(f)).map(header_version)),
        run: one(&mut runs().map(header_version)),
        manifest: one(&mut files.iter().filter(|f| f.ends_with("MANIFEST")).map(header_version)),
        row: one(&mut runs().map(|f| u32::from(read_run(&read(f)).row_version))) as u8,
    }
}

/// Opens a copy of fixture directory `dir` (opening may repair a log's
/// tail or remove files; the fixtures stay as they are).
fn open_copy(dir: &Path) -> (tempfile::TempDir, Store) {
    let copy = tempfile::tempdir().unwrap();
    copy_files(&store_files(dir), copy.path());
    let store = Store::open(options(copy.path())).unwrap();
    (copy, store)
}

fn scan(store: &Store, table: TableId) -> Vec<(Vec<u8>, Vec<Value>)> {
    store.begin().unwrap().scan(table, Bound::Unbounded, Bound::Unbounded).unwrap()
}

#[test]
fn log_segments_hold_the_records_after_the_checkpoint() {
    for (_, dir) in fixtures() {
        let segments: Vec<PathBuf> = store_files(&dir).into_iter().filter(|f| is_segment(f)).collect();
        assert_eq!(segments.len(), 1, "{}", dir.display());
        let bytes = std::fs::read(&segments[0]).unwrap();
        let segment = read_segment(&bytes);
        assert_eq!(segment.records, LOG_TAIL, "{}", dir.display());
        // Taken from a spare: zero-filled room after the records, to its size.
        assert_eq!(bytes.len() as u64, WAL_SEGMENT_BYTES);
        assert!(segment.end < bytes.len());
    }
}

#[test]
fn runs_hold_each_checkpoints_changes_with_filter_and_index() {
    for (_, dir) in fixtures() {
        let runs: Vec<PathBuf> = store_files(&dir).into_iter().filter(|f| f.extension().is_some_and(|e| e == "omr")).collect();
        let mut names: Vec<&str> = runs.iter().map(|f| f.file_name().unwrap().to_str().unwrap()).collect();
        let mut expect: Vec<&str> = RUNS.iter().map(|r| r.0).collect();
        names.sort();
        expect.sort();
        assert_eq!(names, expect, "{}", dir.display());
        for (name, entries, tombstones) in RUNS {
            let run = read_run(&std::fs::read(dir.join(name)).unwrap());
            let name_says = format!("run-{:010}-{:020}.omr", run.table, run.ts);
            assert_eq!((name_says.as_str(), run.entries, run.tombstones, run.row_version), (name, entries, tombstones, 1));
        }
    }
}

#[test]
fn the_manifest_names_the_checkpoint() {
    for (_, dir) in fixtures() {
        let bytes = std::fs::read(dir.join("MANIFEST")).unwrap();
        let (ts, next_table_id, body) = read_manifest(&bytes);
        assert_eq!((ts, next_table_id), (CHECKPOINT, 7), "{}", dir.display());
        // After the tables, those dropped: one, `scratch` (id, drop timestamp, schema).
        let mut retired = vec![1];
        retired.extend(SCRATCH.to_le_bytes());
        retired.extend(SCRATCH_DROPPED.to_le_bytes());
        retired.extend(b"\x07scratch");
        assert!(body.windows(retired.len()).any(|w| w == retired), "{}", dir.display());
    }
}

#[test]
fn every_table_row_and_index_reads_as_written() {
    for (_, dir) in fixtures() {
        let (_copy, store) = open_copy(&dir);
        // The log after the checkpoint was replayed: its last commit is the clock.
        assert_eq!(store.current_ts(), LAST, "{}", dir.display());
        let info = store.checkpoint_info();
        let run_bytes: u64 = RUNS.iter().map(|r| std::fs::metadata(dir.join(r.0)).unwrap().len()).sum();
        assert_eq!((info.ts, info.runs, info.rows, info.run_bytes), (CHECKPOINT, 5, 68 + 4 + 4, run_bytes));

        let tables: Vec<(TableId, TableSchema)> = store.tables().into_iter().map(|(id, s)| (id, (*s).clone())).collect();
        let expect = vec![(ACCOUNTS, accounts_schema()), (EVERY_TYPE, every_type_schema()), (PAIRS_ALTERED, altered_pairs_schema())];
        assert_eq!(tables, expect);
        assert!(store.table("scratch").is_none() && store.table("notes").is_none());

        let accounts = final_accounts();
        let keyed: Vec<_> = accounts.iter().map(|r| (encode_key(r, &[0]), r.clone())).collect();
        assert_eq!(scan(&store, ACCOUNTS), keyed);
        // Point reads of every key, present or not: through the runs' filters and indexes.
        let reader = store.begin().unwrap();
        for id in 0..=75 {
            let expect = accounts.iter().find(|r| r[0] == Value::Int64(id)).cloned();
            assert_eq!(reader.get(ACCOUNTS, &account_key(id)).unwrap(), expect, "account {id}");
        }
        let every_type: Vec<_> = final_every_type().into_iter().map(|(id, r)| (encode_row_id(id), r)).collect();
        assert_eq!(scan(&store, EVERY_TYPE), every_type);
        let pairs = scan(&store, PAIRS_ALTERED);
        assert_eq!(pairs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), final_pairs());
        assert!(pairs.iter().all(|(k, r)| *k == encode_key(r, &[0, 1])));

        assert_eq!(store.indexes("accounts"), vec![owner_index()]);
        assert!(!store.index_exists("accounts_balance"));
        assert_eq!(store.indexes("pairs"), vec![pairs_index()]);
        let by_owner = |owner: Value| {
            let rows = reader.index_scan(ACCOUNTS, "accounts_owner", &KeyRange::prefix(vec![owner]), usize::MAX).unwrap().unwrap();
            rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>()
        };
        for owner in [Value::Text("ann".into()), Value::Null] {
            assert_eq!(by_owner(owner.clone()), accounts.iter().filter(|r| r[2] == owner).cloned().collect::<Vec<_>>());
        }
        let range = KeyRange { eq: vec![], lo: Bound::Included(Value::Int32(2)), hi: Bound::Included(Value::Int32(5)) };
        let by_n = reader.index_scan(PAIRS_ALTERED, "pairs_n", &range, usize::MAX).unwrap().unwrap();
        let ns: Vec<Value> = by_n.into_iter().map(|(_, r)| r[1].clone()).collect();
        assert_eq!(ns, [2, 3, 4, 5].map(Value::Int32));
        drop(reader);

        // The manifest's next row id: a new row of the keyless table follows the checkpoint's.
        let mut txn = store.begin().unwrap();
        assert_eq!(txn.insert(EVERY_TYPE, typed(5)).unwrap(), encode_row_id(5));
    }
}

#[test]
fn the_log_tail_replays_as_the_change_stream() {
    for (_, dir) in fixtures() {
        let (_copy, store) = open_copy(&dir);
        let mut got = Vec::new();
        let stopped = store.replay_changes(CHECKPOINT, |r| {
            got.push((r.ts, r.change));
            true
        });
        assert!(matches!(stopped, Err(Error::NotReplayable { ts: ALTER, rewrote: Some((PAIRS, PAIRS_ALTERED)), .. })), "{stopped:?}");
        let change = |table, op, key: Vec<u8>, row: Option<Vec<Value>>| omen_rowstore::RowChange { table, op, key, row };
        let note = |id: u64, text: &str| change(NOTES, ChangeOp::Insert, encode_row_id(id), Some(vec![Value::Text(text.into())]));
        let expect = vec![
            (
                12,
                Change::Commit(vec![
                    change(ACCOUNTS, ChangeOp::Update, account_key(1), Some(account(1, 101))),
                    change(ACCOUNTS, ChangeOp::Delete, account_key(6), None),
                    change(ACCOUNTS, ChangeOp::Insert, account_key(71), Some(account(71, 7100))),
                    change(EVERY_TYPE, ChangeOp::Delete, encode_row_id(1), None),
                ]),
            ),
            // Index DDL: an empty commit.
            (13, Change::Commit(vec![])),
            (14, Change::Commit(vec![])),
            (15, Change::CreateTable { id: NOTES, schema: notes_schema().into() }),
            (
                16,
                Change::Commit(vec![
                    change(PAIRS, ChangeOp::Insert, pair_key("b", 5), Some(pair("b", 5, Some(2.0)))),
                    note(1, "first"),
                    note(2, "second"),
                ]),
            ),
            (17, Change::DropTable { id: NOTES }),
            (ALTER - 2, Change::DropTable { id: PAIRS }),
            (ALTER - 1, Change::CreateTable { id: PAIRS_ALTERED, schema: altered_pairs_schema().into() }),
        ];
        assert_eq!(got, expect, "{}", dir.display());

        let mut after_alter = Vec::new();
        store
            .replay_changes(ALTER, |r| {
                after_alter.push((r.ts, r.change));
                true
            })
            .unwrap();
        let commit = Change::Commit(vec![
            change(PAIRS_ALTERED, ChangeOp::Update, pair_key("a", 1), Some(tagged(pair("a", 1, Some(0.5)), "changed"))),
            change(PAIRS_ALTERED, ChangeOp::Insert, pair_key("c", 6), Some(tagged(pair("c", 6, Some(3.0)), "new"))),
        ]);
        assert_eq!(after_alter, vec![(LAST, commit)]);
    }
}

/// A writer that changes a format's version must come with that
/// version's fixtures (`write_fixtures`).
#[test]
fn the_current_format_versions_have_fixtures() {
    let fresh = tempfile::tempdir().unwrap();
    write_data_set(fresh.path());
    let (_, newest) = fixtures().pop().unwrap();
    assert_eq!(
        versions(fresh.path()),
        versions(&newest),
        "the writer's format versions differ from the newest fixtures': run write_fixtures (see tests/fixtures/rowstore/README.md)"
    );
}

/// Writes `tests/fixtures/rowstore/vN` for the current format versions
/// (N one past the newest); refuses if a directory holds them already.
#[test]
#[ignore = "writes fixtures into the source tree: OMENDB_WRITE_FIXTURES=1 cargo test -p omen-rowstore --test fixtures -- --ignored"]
fn write_fixtures() {
    if std::env::var_os("OMENDB_WRITE_FIXTURES").is_none() {
        eprintln!("set OMENDB_WRITE_FIXTURES=1 to write fixtures");
        return;
    }
    // The log tail in one segment taken from a spare (see `write_data_set`).
    let preallocated = |files: &[PathBuf]| match files.iter().filter(|f| is_segment(f)).collect::<Vec<_>>()[..] {
        [segment] => std::fs::metadata(segment).unwrap().len() == WAL_SEGMENT_BYTES,
        _ => false,
    };
    let (fresh, files) = (0..10)
        .map(|_| {
            let fresh = tempfile::tempdir().unwrap();
            write_data_set(fresh.path());
            let files = store_files(fresh.path());
            (fresh, files)
        })
        .find(|(_, files)| preallocated(files))
        .expect("ten tries, and the checkpoint's roll never found the spare ready");
    let current = versions(fresh.path());
    let existing = version_dirs();
    if let Some((_, dir)) = existing.iter().find(|(_, dir)| versions(dir) == current) {
        panic!("{} holds {current:?} already; fixtures of a released version are never regenerated", dir.display());
    }
    let dir = fixtures_root().join(format!("v{}", existing.last().map_or(1, |(n, _)| n + 1)));
    std::fs::create_dir_all(&dir).unwrap();
    copy_files(&files, &dir);
    eprintln!("wrote {current:?} to {}", dir.display());
}
