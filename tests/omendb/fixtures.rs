//! A whole database directory written by a released layout version opens
//! and shows what was written: the layout file, the row store's log,
//! runs and manifest, and the column store's manifest, segment and delete
//! files together (each crate's own fixture test checks its files alone).
//!
//! `tests/fixtures/database/v2/` was written by `write_fixture` below at
//! layout version 2 (see `tests/fixtures/README.md`). A released
//! version's fixture is never written again: a new version gets a new
//! directory and a test of its own, and this one must keep passing.

use std::path::{Path, PathBuf};

use omendb::{Database, params};

use crate::strs;

fn fixture(version: &str) -> PathBuf {
    // Read at run time: the binary may have been built in another checkout.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    Path::new(&root).join("tests/fixtures/database").join(version)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn rows(db: &Database, sql: &str) -> Vec<Vec<String>> {
    crate::q(db, sql)
}

/// The rows of `kv` that `write_fixture` leaves.
const WRITTEN_KV: &[&[&str]] = &[&["a", "2"], &["c", "3"]];

/// What `write_fixture` leaves: checked through SQL, so both the row store
/// (point reads by key) and the column store (scans) are read.
fn check(db: &Database, kv: &[&[&str]]) {
    assert_eq!(
        rows(db, "SELECT id, name, qty, price, day, at, flag, data FROM items ORDER BY id"),
        strs(&[
            &["1", "apple", "10", "1.50", "2026-01-02", "2026-01-02T03:04:05", "true", "00ff"],
            &["3", "cherry", "30", "3.50", "2026-03-04", "2026-03-04T05:06:07", "NULL", "NULL"],
            &["4", "date", "41", "4.25", "NULL", "NULL", "false", "0102"],
            &["5", "elder", "5", "0.05", "2026-05-06", "2026-05-06T07:08:09", "true", "NULL"],
        ])
    );
    assert_eq!(rows(db, "SELECT name FROM items WHERE id = 4"), strs(&[&["date"]]));
    assert_eq!(rows(db, "SELECT sum(qty), count(*) FROM items"), strs(&[&["86", "4"]]));
    assert_eq!(rows(db, "SELECT k, v FROM kv ORDER BY k"), strs(kv));
    assert_eq!(rows(db, "SELECT name FROM items WHERE qty = 41"), strs(&[&["date"]]), "the index on qty");
}

#[test]
fn database_v2_opens_with_what_was_written() {
    let from = fixture("v2");
    let layout = std::fs::read_to_string(from.join("OMENDB_LAYOUT")).unwrap();
    assert_eq!(layout, "omendb-layout 2\n");
    for file in ["rows/MANIFEST", "columns/COLMANIFEST"] {
        assert!(from.join(file).is_file(), "{file} is in the fixture");
    }
    let kinds = |dir: &str, ext: &str| {
        std::fs::read_dir(from.join(dir)).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext)).count()
    };
    assert!(kinds("rows", "log") >= 1, "a log segment with commits after the checkpoint");
    assert!(kinds("rows", "omr") >= 1, "a checkpoint run");
    assert!(kinds("columns", "parquet") >= 1, "a column segment");
    assert!(kinds("columns", "omd") >= 1, "a column delete file");

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&from, dir.path());
    let db = Database::open(dir.path()).unwrap();
    check(&db, WRITTEN_KV);
    // It keeps working: a write, a reopen, and the same answers.
    db.execute("INSERT INTO kv VALUES ('d', 4)", params![]).unwrap();
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    check(&db, &[&["a", "2"], &["c", "3"], &["d", "4"]]);
}

/// Writes `tests/fixtures/database/<version>` with the current build. Run
/// only for a new layout version:
/// `OMENDB_WRITE_FIXTURES=v3 cargo test --test omendb fixtures::write_fixture -- --ignored`.
#[test]
#[ignore = "writes a new fixture version"]
fn write_fixture() {
    let Ok(version) = std::env::var("OMENDB_WRITE_FIXTURES") else { return };
    let dir = fixture(&version);
    assert!(!dir.exists(), "{} exists: released fixtures are never rewritten", dir.display());
    let db = Database::open(&dir).unwrap();
    db.execute(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INT, price NUMERIC(10,2), day DATE, \
         at TIMESTAMP, flag BOOLEAN, data BYTEA)",
        params![],
    )
    .unwrap();
    db.execute("CREATE INDEX items_qty ON items (qty)", params![]).unwrap();
    db.execute(
        "INSERT INTO items VALUES \
         (1, 'apple', 10, 1.5, '2026-01-02', '2026-01-02 03:04:05', true, decode('00ff', 'hex')), \
         (2, 'banana', 20, 2.5, '2026-02-03', '2026-02-03 04:05:06', false, NULL), \
         (3, 'cherry', 30, 3.5, '2026-03-04', '2026-03-04 05:06:07', NULL, NULL), \
         (4, 'date', 40, 4.25, NULL, NULL, false, decode('0102', 'hex'))",
        params![],
    )
    .unwrap();
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)", params![]).unwrap();
    db.execute("INSERT INTO kv VALUES ('a', 1), ('b', 2)", params![]).unwrap();
    // Into a run; what follows stays in the log only.
    db.checkpoint().unwrap();
    // And into column segments: sync's maintenance thread persists every
    // 2 s, so the changes below leave delete files beside them (checked
    // after the close).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    db.execute("UPDATE items SET qty = 41 WHERE id = 4", params![]).unwrap();
    db.execute("DELETE FROM items WHERE id = 2", params![]).unwrap();
    db.execute("INSERT INTO items VALUES (5, 'elder', 5, 0.05, '2026-05-06', '2026-05-06 07:08:09', true, NULL)", params![]).unwrap();
    db.execute("UPDATE kv SET v = 2 WHERE k = 'a'", params![]).unwrap();
    db.execute("DELETE FROM kv WHERE k = 'b'", params![]).unwrap();
    db.execute("INSERT INTO kv VALUES ('c', 3)", params![]).unwrap();
    check(&db, WRITTEN_KV);
    db.close().unwrap();
    let deletes =
        std::fs::read_dir(dir.join("columns")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "omd"));
    assert!(deletes.count() > 0, "no column delete file: the column store was not persisted before the changes");
    // The lock file says who held it, and a preallocated log segment is
    // zeros: neither is part of the format.
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    let _ = std::fs::remove_file(dir.join("rows/wal-spare"));
    // A log segment is made ahead at full size (1 MiB and more), its
    // records followed by zeros; a segment of any length reads the same, so
    // each keeps its records and the zeros to the next 4 KiB.
    for entry in std::fs::read_dir(dir.join("rows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "log") {
            let bytes = std::fs::read(&path).unwrap();
            let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let keep = used.div_ceil(4096).max(1) * 4096;
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(keep.min(bytes.len()) as u64).unwrap();
        }
    }
}
