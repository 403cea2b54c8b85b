//! Helpers for the log's tests: every I/O backend, opening a log and
//! collecting what it replays, and a sample record.

use std::path::Path;
use std::sync::Arc;

use super::io::{LogIo, Plain};
use super::record::{WalOp, WalRecord, WalWrite};
use super::state::{Durability, Wal, WalOptions};
use super::uring::Uring;
use crate::error::Result;

/// Every backend this machine runs: each test runs on all of them.
pub(super) fn backends() -> Vec<Arc<dyn LogIo>> {
    let mut all: Vec<Arc<dyn LogIo>> = vec![Arc::new(Plain)];
    match Uring::new() {
        Ok(u) => all.push(Arc::new(u)),
        Err(e) => eprintln!("io_uring unavailable here ({e}): testing the plain backend only"),
    }
    all
}

pub(super) fn open_with(io: &Arc<dyn LogIo>, dir: &Path, durability: Durability, segment_bytes: u64) -> Result<(Wal, Vec<WalRecord>)> {
    let mut recs = Vec::new();
    let wal = Wal::open(dir, WalOptions { durability, io: Arc::clone(io), segment_bytes }, 0, |r| {
        recs.push(r);
        Ok(())
    })?;
    Ok((wal, recs))
}

pub(super) fn open(io: &Arc<dyn LogIo>, dir: &Path, durability: Durability) -> Result<(Wal, Vec<WalRecord>)> {
    open_with(io, dir, durability, 1 << 20)
}

pub(super) fn commit(ts: u64) -> WalRecord {
    WalRecord::Commit {
        ts,
        writes: vec![
            WalWrite { table: 1, key: vec![1, 2], op: WalOp::Insert(Arc::from(vec![9u8; 5])) },
            WalWrite { table: 1, key: vec![3], op: WalOp::Update(Arc::from(vec![8u8])) },
            WalWrite { table: 2, key: vec![], op: WalOp::Delete },
        ],
    }
}
