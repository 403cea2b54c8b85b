//! SIGKILL a child process that commits while checkpoints run: after each
//! kill every acknowledged commit is there, no transaction is partial, and
//! the store keeps working. 120 cycles, the kill at a varying moment.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use omen_rowstore::{Durability, Store, StoreOptions};

use crate::{account_ids as ids, row};

const CHILD_ENV: &str = "OMEN_ROWSTORE_CRASH_CHILD";
const CYCLES: u64 = 120;

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability: Durability::Full,
        gc_interval: Duration::from_millis(1),
        // Small segments and checkpoints: kills land in rolls, runs and removals.
        wal_segment_bytes: 2048,
        checkpoint_wal_bytes: 4096,
        ..StoreOptions::default()
    }
}

/// The child: two-row transactions forever, each reported once `commit`
/// returned (Full durability: after its fdatasync), while another thread
/// takes checkpoints back to back.
fn child(dir: &Path) {
    let store = Store::open(options(dir)).unwrap();
    let (t, _) = store.table("accounts").unwrap();
    let start = ids(&store).last().copied().unwrap_or(0);
    let checkpointer = store.clone();
    std::thread::spawn(move || {
        loop {
            checkpointer.checkpoint().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let mut out = std::io::stdout().lock();
    for id in (start + 1..).step_by(2) {
        let mut txn = store.begin().unwrap();
        txn.insert(t, row(id, 1)).unwrap();
        txn.insert(t, row(id + 1, 2)).unwrap();
        txn.commit().unwrap();
        writeln!(out, "{}", id + 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_commits_survive_sigkill_during_checkpoints() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    crate::create_accounts(&Store::open(options(dir.path())).unwrap());
    let mut acked = 0i64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for cycle in 0..CYCLES {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::acknowledged_commits_survive_sigkill_during_checkpoints", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for _ in 0..1 + rng % 40 {
            let line = lines.next().expect("child stopped reporting").unwrap();
            if let Ok(id) = line.trim().parse::<i64>() {
                acked = id;
            }
        }
        // Sometimes a little later than an acknowledgement, mid-commit.
        std::thread::sleep(Duration::from_micros((rng >> 8) % 2000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(options(dir.path())).unwrap_or_else(|e| panic!("cycle {cycle}: reopening: {e}"));
        let ids = ids(&store);
        let max = ids.last().copied().unwrap_or(0);
        assert!(max >= acked, "cycle {cycle}: acknowledged {acked}, found max {max}");
        assert!(ids.iter().copied().eq(1..=max), "cycle {cycle}: a gap (lost commit) among {} ids", ids.len());
        assert_eq!(max % 2, 0, "cycle {cycle}: a partial transaction");
        store.close().unwrap();
    }
    // The kills did land among checkpoints.
    let store = Store::open(options(dir.path())).unwrap();
    assert!(store.checkpoint_info().ts > 0);
    eprintln!("{} commits acknowledged over {CYCLES} kills; {:?}", acked / 2, store.checkpoint_info());
}
