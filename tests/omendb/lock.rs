//! One process per data directory: a second opener gets `Error::Locked`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use omendb::{Database, Error, params};

const CHILD_ENV: &str = "OMENDB_TEST_LOCK_CHILD";

#[test]
fn a_second_opener_gets_locked_naming_the_holder() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // Child: hold the database open until the parent closes our stdin.
        let db = Database::open(&dir).unwrap();
        db.execute("INSERT INTO t VALUES (2)", params![]).unwrap();
        println!("ready");
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().read_line(&mut String::new());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        db.execute("CREATE TABLE t (x INT PRIMARY KEY)", params![]).unwrap();
        db.execute("INSERT INTO t VALUES (1)", params![]).unwrap();
        // The same process, a second handle: refused too.
        assert!(matches!(Database::open(dir.path()), Err(Error::Locked { .. })));
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock::a_second_opener_gets_locked_naming_the_holder", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited before opening the database");
    }
    match Database::open(dir.path()) {
        Err(Error::Locked { holder, .. }) => assert_eq!(holder, format!("pid={}", child.id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(crate::q(&db, "SELECT count(*) FROM t"), crate::strs(&[&["2"]]));
}
