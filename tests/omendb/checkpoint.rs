//! Checkpoints through the facade: SQL `CHECKPOINT` and `VACUUM FULL`, a
//! reopened database that loads runs and replays the log after them, and a version-1 data
//! directory (one log file) opened and upgraded.

use omendb::{Database, params};

use crate::{q, strs};

#[test]
fn sql_checkpoint_then_reopen_keeps_rows_indexes_and_later_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.execute("CREATE TABLE items (id BIGINT PRIMARY KEY, grp INT NOT NULL, name TEXT)", params![]).unwrap();
    db.execute("CREATE INDEX items_grp ON items (grp)", params![]).unwrap();
    db.execute("INSERT INTO items SELECT v, v % 10, 'n' || v FROM generate_series(1, 5000) AS t(v)", params![]).unwrap();
    assert_eq!(db.checkpoint_info().ts, 0);
    db.execute("CHECKPOINT", params![]).unwrap();
    let info = db.checkpoint_info();
    assert!(info.ts > 0 && info.rows == 5000, "{info:?}");
    db.execute("UPDATE items SET name = 'changed' WHERE grp = 3", params![]).unwrap();
    db.execute("DELETE FROM items WHERE id <= 100", params![]).unwrap();
    let expect = q(&db, "SELECT count(*), sum(id), count(*) FILTER (WHERE name = 'changed') FROM items");
    db.close().unwrap();

    // The column store was written beside the rows and resumes from there.
    assert!(dir.path().join("columns").join("COLMANIFEST").exists());
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT count(*), sum(id), count(*) FILTER (WHERE name = 'changed') FROM items"), expect);
    assert_eq!(q(&db, "SELECT name FROM items WHERE grp = 3 AND id = 103"), strs(&[&["changed"]]));
    assert_eq!(q(&db, "SELECT count(*) FROM items WHERE grp = 7"), strs(&[&["490"]]));
    assert!(db.execute("CHECKPOINT now", params![]).is_err());
    // The second checkpoint adds a run of the changes; VACUUM FULL merges
    // the two.
    db.execute("CHECKPOINT", params![]).unwrap();
    let info = db.checkpoint_info();
    assert_eq!((info.runs, info.rows), (2, 4900), "{info:?}");
    db.execute("VACUUM FULL items", params![]).unwrap();
    let info = db.checkpoint_info();
    assert_eq!((info.runs, info.rows), (1, 4900), "{info:?}");
    assert_eq!(q(&db, "SELECT count(*), sum(id), count(*) FILTER (WHERE name = 'changed') FROM items"), expect);
}

/// Every record of the log segments in `rows`, in order, after one header,
/// as a version-1 build's single log file held them; removes the segments.
fn one_log(rows: &std::path::Path) -> Vec<u8> {
    let mut segments: Vec<_> = std::fs::read_dir(rows)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wal-0"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for path in segments {
        let bytes = std::fs::read(&path).unwrap();
        if out.is_empty() {
            out.extend_from_slice(&bytes[..16]);
        }
        // Records: | len u32 | crc u32 | payload |, then zero-filled room.
        let mut at = 16;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            if len == 0 {
                break;
            }
            out.extend_from_slice(&bytes[at..at + 8 + len]);
            at += 8 + len;
        }
        std::fs::remove_file(path).unwrap();
    }
    out
}

#[test]
fn a_version_1_directory_opens_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.execute("CREATE TABLE t (a INT PRIMARY KEY, b TEXT)", params![]).unwrap();
    db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", params![]).unwrap();
    db.close().unwrap();
    // What a version-1 build left: one log file (the same header and
    // records: the segments' records in order), layout 1.
    let rows = dir.path().join("rows");
    std::fs::write(rows.join("wal.log"), one_log(&rows)).unwrap();
    std::fs::write(dir.path().join("OMENDB_LAYOUT"), "omendb-layout 1\n").unwrap();

    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT b FROM t ORDER BY a"), strs(&[&["one"], &["two"]]));
    assert_eq!(std::fs::read_to_string(dir.path().join("OMENDB_LAYOUT")).unwrap(), "omendb-layout 2\n");
    db.execute("INSERT INTO t VALUES (3, 'three')", params![]).unwrap();
    // The column store holds the log until it has written what it read
    // from it (closing writes it).
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.checkpoint().unwrap();
    assert!(!rows.join("wal.log").exists(), "the old log is removed once a checkpoint holds it");
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT count(*) FROM t"), strs(&[&["3"]]));
}
