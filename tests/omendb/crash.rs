//! SIGKILL a child process mid-commit; every acknowledged commit survives.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use omendb::{Database, Options, params};

const CHILD_ENV: &str = "OMENDB_TEST_CRASH_CHILD";
const CYCLES: usize = 5;

#[test]
fn acknowledged_commits_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // Child: commit two-row transactions forever, reporting each one
        // after commit returns (Durability::Full: after fdatasync).
        // Checkpoints every few KiB of log: kills land in them too.
        let db = Database::open_with(&dir, Options::default().with_checkpoint_wal_bytes(4096)).unwrap();
        let start: i64 = crate::q(&db, "SELECT coalesce(max(id), 0) FROM t")[0][0].parse().unwrap();
        let mut out = std::io::stdout().lock();
        for id in (start + 1..).step_by(2) {
            let mut txn = db.begin().unwrap();
            txn.execute("INSERT INTO t VALUES ($1, 'a'), ($2, 'b')", params![id, id + 1]).unwrap();
            txn.commit().unwrap();
            writeln!(out, "{}", id + 1).unwrap();
            out.flush().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Database::open(dir.path()).unwrap().execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)", params![]).unwrap();
    let mut acked = 0i64;
    for cycle in 0..CYCLES {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::acknowledged_commits_survive_sigkill", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a cycle-dependent number of acknowledgements.
        for _ in 0..(5 + cycle * 7) {
            let line = lines.next().expect("child stopped reporting").unwrap();
            if let Ok(id) = line.trim().parse::<i64>() {
                acked = id;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let got = crate::q(&db, "SELECT count(*), coalesce(max(id), 0), count(DISTINCT v) FROM t");
        let (count, max): (i64, i64) = (got[0][0].parse().unwrap(), got[0][1].parse().unwrap());
        assert!(max >= acked, "cycle {cycle}: acknowledged {acked}, found max {max}");
        assert_eq!(count, max, "cycle {cycle}: no partial transaction, no gap");
        assert_eq!(count % 2, 0, "cycle {cycle}: transactions are all-or-nothing");
        db.execute("INSERT INTO t VALUES ($1, 'a'), ($2, 'b')", params![max + 1, max + 2]).unwrap();
        db.execute("DELETE FROM t WHERE id > $1", params![max]).unwrap();
        db.close().unwrap();
    }
}
