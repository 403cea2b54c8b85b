//! The column store's files as each format version wrote them
//! (`tests/fixtures/colstore/vN/` at the repository's root; see the README
//! there): every version still opens and reads as it was written.
//!
//! One data set serves every version: three tables (one of every column
//! type the store accepts, one small, one empty), commits that insert,
//! update and delete, persists at watermarks 1, 3 and 4, the last after a
//! commit past its watermark. `write_fixtures` writes the current version's
//! directory:
//!
//!   OMENDB_WRITE_FIXTURES=1 cargo test -p omen-colstore --test fixtures -- --ignored
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch};
use arrow::compute::{cast, concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use omen_colstore::{ChangeBatch, ChangeOp, ColumnStore, ColumnStoreOptions};

/// Each write of a commit: a key and the seed of its row's values, `None`
/// to delete it.
type Writes = &'static [(i64, Option<i64>)];

/// The commits in order: (commit timestamp, table, writes).
const COMMITS: &[(u64, u64, Writes)] = &[
    (1, 1, &[(0, Some(1)), (1, Some(1)), (2, Some(1)), (3, Some(1)), (4, Some(1)), (5, Some(1)), (6, Some(1)), (7, Some(1))]),
    (1, 2, &[(10, Some(1)), (11, Some(1)), (12, Some(1)), (13, Some(1))]),
    (2, 1, &[(1, Some(2)), (2, Some(2)), (3, None)]),
    (2, 2, &[(10, None), (11, Some(2))]),
    (3, 1, &[(2, Some(3)), (8, Some(3))]),
    (3, 2, &[(14, Some(3))]),
    (4, 1, &[(8, None), (4, Some(4))]),
    (5, 1, &[(5, Some(5)), (6, None)]),
];

/// Persists: (after the commits of this timestamp, at this watermark). The last
/// catches commit 5, past its watermark, which opening leaves out.
const PERSISTS: &[(u64, u64)] = &[(1, 1), (3, 3), (5, 4)];
const WATERMARK: u64 = 4;

/// Tables (id, schema); the first key column is the key.
fn tables() -> Vec<(u64, SchemaRef)> {
    use DataType::*;
    let every_type = [
        ("k", Int64, false),
        ("i8", Int8, true),
        ("i16", Int16, true),
        ("i32", Int32, false),
        ("i64", Int64, true),
        ("u8", UInt8, true),
        ("u16", UInt16, true),
        ("u32", UInt32, true),
        ("u64", UInt64, true),
        ("f16", Float16, true),
        ("f32", Float32, true),
        ("f64", Float64, true),
        ("utf8", Utf8, true),
        ("large_utf8", LargeUtf8, true),
        ("utf8_view", Utf8View, true),
        ("binary", Binary, true),
        ("large_binary", LargeBinary, true),
        ("binary_view", BinaryView, true),
        ("fixed3", FixedSizeBinary(3), true),
        ("bool", Boolean, true),
        ("date32", Date32, true),
        ("date64", Date64, true),
        ("time32_s", Time32(TimeUnit::Second), true),
        ("time32_ms", Time32(TimeUnit::Millisecond), true),
        ("time64_us", Time64(TimeUnit::Microsecond), true),
        ("time64_ns", Time64(TimeUnit::Nanosecond), true),
        ("ts_s", Timestamp(TimeUnit::Second, None), true),
        ("ts_ms", Timestamp(TimeUnit::Millisecond, None), true),
        ("ts_us", Timestamp(TimeUnit::Microsecond, None), true),
        ("ts_ns", Timestamp(TimeUnit::Nanosecond, None), true),
        ("ts_us_utc", Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ("ts_ms_offset", Timestamp(TimeUnit::Millisecond, Some("+05:30".into())), true),
        ("dur_s", Duration(TimeUnit::Second), true),
        ("dur_ns", Duration(TimeUnit::Nanosecond), true),
        ("dec128", Decimal128(20, 4), true),
        ("dec128_max", Decimal128(38, 0), true),
        ("dec256", Decimal256(50, 10), true),
    ];
    let small = [("k", Int64, false), ("name", Utf8, true), ("amount", Decimal128(12, 2), false)];
    let empty = [("k", Int64, false), ("v", Float64, true)];
    let schema = |fields: &[(&str, DataType, bool)]| {
        Arc::new(Schema::new(fields.iter().map(|(n, t, null)| Field::new(*n, t.clone(), *null)).collect::<Vec<_>>()))
    };
    vec![(1, schema(&every_type)), (2, schema(&small)), (3, schema(&empty))]
}

/// Rows (key, seed) in `schema`: the key column is the key; each other
/// column `c` holds `(7k + 13 seed + c) % 100` in its type (as Arrow casts
/// it from Int64), null in nullable columns where `(k + seed + c) % 5 == 0`.
fn rows(schema: &SchemaRef, rows: &[(i64, i64)]) -> RecordBatch {
    let column = |c: usize, field: &Field| -> ArrayRef {
        let keys = rows.iter().map(|&(k, _)| k);
        if c == 0 {
            return Arc::new(Int64Array::from_iter_values(keys));
        }
        let c = c as i64;
        let values: Int64Array = rows
            .iter()
            .map(|&(k, seed)| (!field.is_nullable() || (k + seed + c) % 5 != 0).then_some((7 * k + 13 * seed + c) % 100))
            .collect();
        match field.data_type() {
            DataType::FixedSizeBinary(3) => Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(values.iter().map(|v| v.map(|v| format!("{v:03}"))), 3).unwrap(),
            ),
            // Arrow casts these from the type in between, not from Int64.
            t @ (DataType::Date32 | DataType::Time32(_)) => cast(&cast(&values, &DataType::Int32).unwrap(), t).unwrap(),
            t @ (DataType::Binary | DataType::LargeBinary | DataType::BinaryView) => {
                cast(&cast(&values, &DataType::Utf8).unwrap(), t).unwrap()
            }
            t => cast(&values, t).unwrap(),
        }
    };
    let columns = schema.fields().iter().enumerate().map(|(c, f)| column(c, f)).collect();
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

fn key(k: i64) -> Vec<u8> {
    k.to_be_bytes().to_vec()
}

/// Each table's live rows (key -> seed) after the commits up to `ts`.
fn model(ts: u64) -> BTreeMap<u64, BTreeMap<i64, i64>> {
    let mut live: BTreeMap<u64, BTreeMap<i64, i64>> = tables().into_iter().map(|(id, _)| (id, BTreeMap::new())).collect();
    for &(_, table, writes) in COMMITS.iter().filter(|c| c.0 <= ts) {
        let rows = live.get_mut(&table).unwrap();
        for &(k, seed) in writes {
            match seed {
                Some(seed) => rows.insert(k, seed),
                None => rows.remove(&k),
            };
        }
    }
    live
}

/// Writes the data set into a store in `dir`.
fn write(dir: &Path) {
    let store = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.into()), ..Default::default() }).unwrap();
    for (id, schema) in tables() {
        store.create_table(id, schema).unwrap();
    }
    let schemas: BTreeMap<u64, SchemaRef> = tables().into_iter().collect();
    let last = COMMITS.iter().map(|c| c.0).max().unwrap();
    for ts in 1..=last {
        let live = model(ts - 1);
        for &(_, table, writes) in COMMITS.iter().filter(|c| c.0 == ts) {
            let mut ops = Vec::new();
            let mut appended = Vec::new();
            for &(k, seed) in writes {
                if live[&table].contains_key(&k) {
                    ops.push(ChangeOp::End { key: key(k), ts });
                }
                if let Some(seed) = seed {
                    ops.push(ChangeOp::Append { row: appended.len(), key: key(k), ts });
                    appended.push((k, seed));
                }
            }
            store.table(table).unwrap().apply(ChangeBatch { rows: rows(&schemas[&table], &appended), ops }).unwrap();
        }
        for &(_, watermark) in PERSISTS.iter().filter(|p| p.0 == ts) {
            store.persist(watermark).unwrap();
        }
    }
    assert_eq!(store.durable_watermark(), WATERMARK);
}

/// `tests/fixtures/colstore` at the repository's root, found at run time:
/// CI runs these binaries from another checkout than the one that built them.
fn fixtures() -> PathBuf {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run through cargo test: CARGO_MANIFEST_DIR locates the fixtures");
    Path::new(&crate_dir).join("../tests/fixtures/colstore")
}

const MANIFEST: &str = "COLMANIFEST";

fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().unwrap())
}

/// The format version in a manifest's header.
fn manifest_version(dir: &Path) -> u32 {
    le_u32(&std::fs::read(dir.join(MANIFEST)).unwrap()[8..12])
}

/// Files in `dir` named `prefix*.suffix`.
fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix)))
        .collect();
    out.sort();
    out
}

/// Each kind of file, read by hand: the manifest's magic, version and
/// checksum; the segment files' Parquet magic at both ends; the delete
/// files' magic, length and checksum.
fn check_raw(dir: &Path, version: u32) {
    let crc_ok = |bytes: &[u8]| {
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        crc32c::crc32c(body) == le_u32(crc)
    };
    let manifest = std::fs::read(dir.join(MANIFEST)).unwrap();
    assert_eq!(&manifest[..8], b"OMENCOL\0");
    assert_eq!(le_u32(&manifest[8..12]), version);
    assert!(crc_ok(&manifest), "manifest checksum");

    let segments = files(dir, "seg-", ".parquet");
    assert!(segments.len() >= 3, "{segments:?}");
    for path in segments {
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "{}", path.display());
    }

    let deletes = files(dir, "del-", ".omd");
    assert!(!deletes.is_empty());
    for path in deletes {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"OMENDEL\0", "{}", path.display());
        let n = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        assert_eq!(bytes.len() as u64, 20 + 12 * n, "{}", path.display());
        assert!(crc_ok(&bytes), "{}", path.display());
    }
}

/// Opens a copy of `dir` (opening removes files the manifest does not
/// name) and checks the tables, their rows at every snapshot and the
/// watermark against the data set.
fn check_store(dir: &Path) {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    let store = ColumnStore::open(ColumnStoreOptions { dir: Some(copy.path().into()), ..Default::default() }).unwrap();
    assert_eq!(store.durable_watermark(), WATERMARK);
    let expect = tables();
    assert_eq!(store.tables(), expect, "ids and schemas, exact Arrow types");
    // Past the watermark, the state at it: commit 5 was persisted but is left out.
    for ts in 0..=WATERMARK + 2 {
        let live = model(ts.min(WATERMARK));
        for (id, schema) in &expect {
            let table = store.table(*id).unwrap();
            let batches = table.scan(ts, None, &[], &HashSet::new(), false).unwrap();
            let got = concat_batches(schema, &batches).unwrap();
            let got = take_record_batch(&got, &sort_to_indices(got.column(0), None, None).unwrap()).unwrap();
            let want: Vec<(i64, i64)> = live[id].iter().map(|(k, s)| (*k, *s)).collect();
            assert_eq!(got, rows(schema, &want), "table {id} at {ts}");
        }
    }
    // Versions of commit 5 are gone; deleted and superseded ones stay
    // until compaction.
    for (id, _) in &expect {
        let appended = COMMITS.iter().filter(|c| c.0 <= WATERMARK && c.1 == *id).flat_map(|c| c.2).filter(|w| w.1.is_some()).count();
        assert_eq!(store.table(*id).unwrap().version_count(), appended, "table {id}");
    }
}

#[test]
fn every_format_version_reads_as_written() {
    let root = fixtures();
    let mut versions: Vec<u32> =
        std::fs::read_dir(&root).unwrap().filter_map(|e| e.unwrap().file_name().to_str()?.strip_prefix('v')?.parse().ok()).collect();
    versions.sort_unstable();
    assert!(versions.starts_with(&[1]), "fixtures from version 1 on in {}: {versions:?}", root.display());
    for version in versions {
        let dir = root.join(format!("v{version}"));
        check_raw(&dir, version);
        check_store(&dir);
    }
}

/// The version the store writes now has fixtures: a format change comes
/// with a new directory of them.
#[test]
fn the_current_format_version_has_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let version = manifest_version(dir.path());
    assert!(fixtures().join(format!("v{version}")).is_dir(), "no fixtures for format version {version}: run write_fixtures");
    // What the current writer writes reads as the fixtures do.
    check_raw(dir.path(), version);
    check_store(dir.path());
}

/// Writes the current format version's fixtures; a version's directory,
/// once committed, is never written again.
#[test]
#[ignore = "writes tests/fixtures/colstore/vN: OMENDB_WRITE_FIXTURES=1 cargo test -p omen-colstore --test fixtures -- --ignored"]
fn write_fixtures() {
    if std::env::var_os("OMENDB_WRITE_FIXTURES").is_none() {
        eprintln!("OMENDB_WRITE_FIXTURES is not set: nothing written");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path());
    let target = fixtures().join(format!("v{}", manifest_version(tmp.path())));
    assert!(
        !target.exists(),
        "{} exists: a released version's fixtures are never written again (remove it by hand only if that version never shipped)",
        target.display()
    );
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
    }
    println!("wrote {}", target.display());
}
