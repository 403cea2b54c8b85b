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
    assert!(sub.try_recv().is_none());
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
