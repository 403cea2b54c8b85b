//! Checkpoints through the facade: SQL `CHECKPOINT`, a reopened database
//! that loads runs and replays the log after them, and a version-1 data
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

    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT count(*), sum(id), count(*) FILTER (WHERE name = 'changed') FROM items"), expect);
    assert_eq!(q(&db, "SELECT name FROM items WHERE grp = 3 AND id = 103"), strs(&[&["changed"]]));
    assert_eq!(q(&db, "SELECT count(*) FROM items WHERE grp = 7"), strs(&[&["490"]]));
    assert!(db.execute("CHECKPOINT now", params![]).is_err());
}

#[test]
fn a_version_1_directory_opens_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.execute("CREATE TABLE t (a INT PRIMARY KEY, b TEXT)", params![]).unwrap();
    db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", params![]).unwrap();
    db.close().unwrap();
    // What a version-1 build left: one log file, layout 1.
    let rows = dir.path().join("rows");
    std::fs::rename(rows.join("wal-0000000001.log"), rows.join("wal.log")).unwrap();
    std::fs::write(dir.path().join("OMENDB_LAYOUT"), "omendb-layout 1\n").unwrap();

    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT b FROM t ORDER BY a"), strs(&[&["one"], &["two"]]));
    assert_eq!(std::fs::read_to_string(dir.path().join("OMENDB_LAYOUT")).unwrap(), "omendb-layout 2\n");
    db.execute("INSERT INTO t VALUES (3, 'three')", params![]).unwrap();
    db.checkpoint().unwrap();
    assert!(!rows.join("wal.log").exists(), "the old log is removed once a checkpoint holds it");
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT count(*) FROM t"), strs(&[&["3"]]));
}
