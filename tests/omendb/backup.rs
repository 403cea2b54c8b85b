//! Online backup: a copy taken while a writer commits opens as a database
//! holding a prefix of the commits, and takes new writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use omendb::{Database, Error, params};

use crate::{q, strs};

#[test]
fn backups_taken_under_writes_hold_a_prefix_of_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("live")).unwrap();
    db.execute("CREATE TABLE events (id BIGINT PRIMARY KEY, note TEXT)", params![]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicI64::new(0));
    let writer = {
        let (db, stop, acknowledged) = (db.clone(), Arc::clone(&stop), Arc::clone(&acknowledged));
        std::thread::spawn(move || {
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) && id < 100_000 {
                id += 1;
                db.execute("INSERT INTO events VALUES ($1, 'e')", params![id]).unwrap();
                acknowledged.store(id, Ordering::Release);
            }
        })
    };
    let mut copies = Vec::new();
    for i in 0..3 {
        // Wait for some commits between copies (while the writer lives).
        let seen = acknowledged.load(Ordering::Acquire);
        while acknowledged.load(Ordering::Acquire) < seen + 20 && !writer.is_finished() {
            std::thread::yield_now();
        }
        if i == 1 {
            // The later copies take a checkpoint's runs and the log after it.
            db.checkpoint().unwrap();
        }
        let before = acknowledged.load(Ordering::Acquire);
        let target = dir.path().join(format!("copy{i}"));
        db.backup_to(&target).unwrap();
        copies.push((target, before));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    for (target, before) in copies {
        let copy = Database::open(&target).unwrap();
        let rows = q(&copy, "SELECT count(*), coalesce(max(id), 0) FROM events");
        let (count, max): (i64, i64) = (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap());
        // A prefix: ids 1..=max, none missing, at least what was
        // acknowledged before the backup began.
        assert_eq!(count, max, "{}: a gap in the copied commits", target.display());
        assert!(max >= before, "{}: {max} rows, {before} acknowledged before the backup", target.display());
        copy.execute("INSERT INTO events VALUES (-1, 'after')", params![]).unwrap();
        assert_eq!(q(&copy, "SELECT note FROM events WHERE id = -1"), strs(&[&["after"]]));
    }
}

#[test]
fn a_backup_never_writes_over_files_nor_copies_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("live")).unwrap();
    db.execute("CREATE TABLE t (a INT PRIMARY KEY)", params![]).unwrap();
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    assert!(matches!(db.backup_to(&busy), Err(Error::Unsupported(m)) if m.contains("not empty")));
    assert_eq!(std::fs::read_to_string(busy.join("keep.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1, "nothing added");
    let memory = Database::open_in_memory().unwrap();
    assert!(matches!(memory.backup_to(dir.path().join("m")), Err(Error::Unsupported(_))));
    // A closed database makes no backup (src/dir.rs tests a copy failing
    // midway: no target, no partial directory left).
    let target = dir.path().join("late");
    let closed = db.clone();
    db.close().unwrap();
    assert!(matches!(closed.backup_to(&target), Err(Error::Closed)));
    assert!(!target.exists());
    // An empty target directory is filled.
    let live = Database::open(dir.path().join("live")).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    live.backup_to(&empty).unwrap();
    live.close().unwrap();
    let copy = Database::open(&empty).unwrap();
    assert_eq!(copy.execute("SELECT * FROM t", params![]).unwrap(), 0);
}
