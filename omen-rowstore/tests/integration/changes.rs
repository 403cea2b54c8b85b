//! The change stream: every commit once, in order, with its ops.

use std::time::Duration;

use omen_rowstore::{Change, ChangeOp};

use crate::{accounts_store, key, row};

#[test]
fn commits_arrive_in_order_with_their_ops() {
    let (store, t) = accounts_store();
    let sub = store.subscribe(16);
    let mut a = store.begin().unwrap();
    a.insert(t, row(1, 10)).unwrap();
    a.insert(t, row(2, 20)).unwrap();
    let ts1 = a.commit().unwrap();
    let mut b = store.begin().unwrap();
    b.update(t, &key(1), row(1, 11)).unwrap();
    b.delete(t, &key(2)).unwrap();
    let ts2 = b.commit().unwrap();
    // Insert then delete in one transaction publishes nothing for that key.
    let mut c = store.begin().unwrap();
    c.insert(t, row(3, 30)).unwrap();
    c.delete(t, &key(3)).unwrap();
    c.commit().unwrap();
    // Rolled back and read-only transactions publish nothing.
    let mut d = store.begin().unwrap();
    d.insert(t, row(4, 40)).unwrap();
    d.rollback();

    let wait = Duration::from_secs(5);
    let r1 = sub.recv_timeout(wait).unwrap().unwrap();
    let r2 = sub.recv_timeout(wait).unwrap().unwrap();
    assert!(ts1 < ts2);
    assert_eq!((r1.ts, r2.ts), (ts1, ts2));
    let ops = |c: &Change| match c {
        Change::Commit(rows) => rows.iter().map(|r| (r.op, r.key.clone(), r.row.clone())).collect::<Vec<_>>(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(ops(&r1.change), vec![(ChangeOp::Insert, key(1), Some(row(1, 10))), (ChangeOp::Insert, key(2), Some(row(2, 20)))]);
    assert_eq!(ops(&r2.change), vec![(ChangeOp::Update, key(1), Some(row(1, 11))), (ChangeOp::Delete, key(2), None)]);
    let r3 = sub.recv_timeout(wait).unwrap().unwrap();
    assert_eq!(ops(&r3.change), vec![]);
    assert!(sub.try_recv().unwrap().is_none());
}

#[test]
fn a_slow_subscriber_blocks_commits_instead_of_losing_records() {
    let (store, t) = accounts_store();
    let sub = store.subscribe(2);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for id in 0..50 {
                let mut txn = store.begin().unwrap();
                txn.insert(t, row(id, 0)).unwrap();
                txn.commit().unwrap();
            }
        })
    };
    let mut last = 0;
    for _ in 0..50 {
        let rec = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert!(rec.ts > last);
        last = rec.ts;
        assert!(sub.pending() <= 2);
    }
    writer.join().unwrap();
}

fn log_options(dir: &std::path::Path) -> omen_rowstore::StoreOptions {
    omen_rowstore::StoreOptions {
        dir: Some(dir.into()),
        checkpoint_wal_bytes: 0,
        gc_interval: Duration::ZERO,
        // Small segments: checkpoints have sealed ones to remove.
        wal_segment_bytes: 4096,
        ..omen_rowstore::StoreOptions::default()
    }
}

/// What `replay_changes(after)` passes, without the publish instants.
fn replayed(store: &omen_rowstore::Store, after: u64) -> Vec<(u64, Change)> {
    let mut out = Vec::new();
    let last = store
        .replay_changes(after, |r| {
            out.push((r.ts, r.change));
            true
        })
        .unwrap();
    assert_eq!(last, out.last().map_or(after, |(ts, _)| *ts));
    out
}

/// Replaying the log gives back exactly the records a subscriber received
/// (commits with their ops and rows, table and index DDL), from any
/// timestamp, across checkpoints a hold keeps from trimming it and across
/// a reopen (a dropped table's rows decode with the schema the manifest
/// kept); without the hold a checkpoint trims it, and asking before the
/// trim is an error.
#[test]
fn the_log_replays_the_stream_a_subscriber_received() {
    use omen_rowstore::{Error, IndexDef, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(log_options(dir.path())).unwrap();
    let hold = store.hold_log(0).unwrap();
    let sub = store.subscribe(1 << 20);
    let t = crate::create_accounts(&store);
    let notes = omen_rowstore::TableSchema {
        name: "notes".into(),
        columns: vec![omen_rowstore::ColumnDef::new("n", omen_rowstore::DataType::Text)],
        primary_key: vec![],
    };
    let (n, _) = store.create_table(notes).unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for step in 0..400u64 {
        let mut txn = store.begin().unwrap();
        for _ in 0..1 + next() % 3 {
            let id = (next() % 50) as i64;
            match next() % 4 {
                0 => drop(txn.delete(t, &key(id)).unwrap()),
                _ => txn.upsert(t, row(id, next() as i64 % 1000)).unwrap(),
            }
        }
        if step < 200 && step % 10 == 0 {
            txn.insert(n, vec![omen_rowstore::Value::Text(format!("note {step}"))]).unwrap();
        }
        txn.commit().unwrap();
        match step {
            100 => drop(store.create_index("accounts", IndexDef { name: "by_balance".into(), columns: vec![1], unique: false }).unwrap()),
            150 => store.drop_index("by_balance").unwrap(),
            // Dropped with its rows still in the log: the manifest keeps its schema.
            250 => drop(store.drop_table("notes").unwrap()),
            _ => {}
        }
        if step % 60 == 59 {
            store.checkpoint().unwrap();
        }
    }
    let mut live = Vec::new();
    while let Some(r) = sub.try_recv().unwrap() {
        live.push((r.ts, r.change.clone()));
    }
    assert!(live.len() > 300, "{} records", live.len());
    assert_eq!(replayed(&store, 0), live);
    for (i, (ts, _)) in live.iter().enumerate().step_by(13) {
        assert_eq!(replayed(&store, *ts), live[i + 1..], "from {ts}");
    }
    // A reader may stop early.
    let mut two = 0;
    store
        .replay_changes(0, |_| {
            two += 1;
            two < 2
        })
        .unwrap();
    assert_eq!(two, 2);

    store.close().unwrap();
    drop((hold, store));
    let store = Store::open(log_options(dir.path())).unwrap();
    let hold = store.hold_log(0).unwrap();
    assert_eq!(replayed(&store, 0), live, "after reopening");
    // From after the notes table's creation: its rows decode with the
    // schema the manifest kept for it.
    assert_eq!(replayed(&store, live[5].0), live[6..], "after reopening, from {}", live[5].0);
    drop(hold);
    let mut txn = store.begin().unwrap();
    txn.upsert(t, row(1, 1)).unwrap();
    let ts = txn.commit().unwrap();
    let info = store.checkpoint().unwrap();
    assert_eq!(info.ts, ts);
    assert!(matches!(store.replay_changes(0, |_| true), Err(Error::LogTrimmed { after: 0, .. })));
    assert!(matches!(store.hold_log(0), Err(Error::LogTrimmed { .. })));
    assert_eq!(replayed(&store, ts), vec![]);
    let _hold = store.hold_log(ts).unwrap();
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(1)).unwrap();
    let later = txn.commit().unwrap();
    store.checkpoint().unwrap();
    assert_eq!(replayed(&store, ts).len(), 1, "the hold at {ts} kept the commit at {later}");
    let newest = store.current_ts();
    assert!(matches!(store.replay_changes(newest + 1, |_| true), Err(Error::AheadOfStore { .. })));
    assert!(matches!(store.hold_log(newest + 5), Err(Error::AheadOfStore { .. })));

    // Reopened after checkpoints removed segments, the log knows what it
    // lost, whether records are left after the checkpoint or none are.
    drop(_hold);
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(6_000, 1)).unwrap();
    txn.commit().unwrap();
    store.checkpoint().unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open(log_options(dir.path())).unwrap();
    assert!(matches!(store.replay_changes(ts, |_| true), Err(Error::LogTrimmed { .. })));
    assert_eq!(replayed(&store, store.current_ts()), vec![]);
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(7_000, 1)).unwrap();
    let one = txn.commit().unwrap();
    store.close().unwrap();
    drop(store);
    let store = Store::open(log_options(dir.path())).unwrap();
    assert!(matches!(store.replay_changes(0, |_| true), Err(Error::LogTrimmed { .. })));
    assert_eq!(replayed(&store, one - 1).len(), 1);
}

/// An in-memory store has no log: replay has nothing to give but "none".
#[test]
fn an_in_memory_store_replays_only_an_empty_stream() {
    use omen_rowstore::Error;
    let (store, t) = accounts_store();
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(1, 1)).unwrap();
    let ts = txn.commit().unwrap();
    assert_eq!(store.replay_changes(ts, |_| true).unwrap(), ts);
    assert!(matches!(store.replay_changes(0, |_| true), Err(Error::LogTrimmed { .. })));
    let hold = store.hold_log(ts).unwrap();
    hold.advance(ts);
}

/// ALTER TABLE's rewritten rows are not in the log: replay passes the drop
/// and create records, then stops with an error naming it; replaying
/// from its timestamp goes on.
#[test]
fn replay_stops_at_alter_table_and_goes_on_after_it() {
    use omen_rowstore::{Alteration, ColumnDef, DataType, Error, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(log_options(dir.path())).unwrap();
    let t = crate::create_accounts(&store);
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(1, 10)).unwrap();
    let before = txn.commit().unwrap();
    let altered = store.alter_table("accounts", &[Alteration::AddColumn(ColumnDef::new("note", DataType::Text))]).unwrap();
    let (t2, _) = store.table("accounts").unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(t2, vec![omen_rowstore::Value::Int64(2), omen_rowstore::Value::Int64(20), omen_rowstore::Value::Null]).unwrap();
    let after = txn.commit().unwrap();

    let mut got = Vec::new();
    let stopped = store.replay_changes(before, |r| {
        got.push(r.ts);
        true
    });
    assert!(matches!(stopped, Err(Error::NotReplayable { ts, .. }) if ts == altered), "{stopped:?}");
    assert_eq!(got, vec![altered - 2, altered - 1]);
    let rest = replayed(&store, altered);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, after);
}

/// A damaged record in a sealed segment stops a replay with `Corruption`
/// naming the segment, never a skipped commit.
#[test]
fn damage_in_the_log_stops_a_replay_with_corruption() {
    use omen_rowstore::{Error, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(log_options(dir.path())).unwrap();
    let _hold = store.hold_log(0).unwrap();
    let t = crate::create_accounts(&store);
    for id in 0..200 {
        let mut txn = store.begin().unwrap();
        txn.insert(t, row(id, id)).unwrap();
        txn.commit().unwrap();
    }
    let first = dir.path().join("wal-0000000001.log");
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();
    match store.replay_changes(0, |_| true) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, first),
        other => panic!("{other:?}"),
    }
}
