//! The change feed gives back exactly the committed changes of its table,
//! in commit order, from any start: read from the log, live, and after
//! falling behind the live stream.

use std::collections::HashSet;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use omen_rowstore::{Alteration, ColumnDef, DataType, Store, StoreOptions, TableId, Value, encode_key};
use omen_sync::convert::array_to_values;
use omen_sync::{ChangeFeed, ChangeFeedOptions, Error};

use crate::differential::schema;

/// One change as the feed gives it: (op, commit ts, key, row).
type Change = (String, u64, Vec<u8>, Vec<Value>);

fn key(k: i32) -> Vec<u8> {
    encode_key(&[Value::Int32(k)], &[0])
}

fn decode(batch: &RecordBatch) -> Vec<Change> {
    let op = batch.column(0).as_string::<i32>();
    let ts = batch.column(1).as_primitive::<UInt64Type>();
    let keys = batch.column(2).as_binary::<i32>();
    let k = array_to_values(batch.column(3).as_ref(), &DataType::Int32).unwrap();
    let v = array_to_values(batch.column(4).as_ref(), &DataType::Text).unwrap();
    (0..batch.num_rows())
        .map(|i| (op.value(i).to_string(), ts.value(i), keys.value(i).to_vec(), vec![k[i].clone(), v[i].clone()]))
        .collect()
}

/// Everything the feed has up to the newest commit.
fn drain(feed: &mut ChangeFeed, rows: &Store) -> Vec<Change> {
    read_until(feed, rows, || true)
}

/// Commits a random history to `t` (and noise to `other`), returning the
/// changes of `t` as the feed should give them; `live` holds `t`'s keys.
fn history(rows: &Store, t: TableId, other: TableId, live: &mut HashSet<i32>, commits: usize, seed: u64) -> Vec<Change> {
    let mut x = seed | 1;
    let width = rows.tables().into_iter().find(|(id, _)| *id == other).unwrap().1.columns.len();
    let mut noise = vec![Value::Int32(BASE.with(|b| *b.borrow()))];
    noise.resize(width, Value::Null);
    let mut expected = Vec::new();
    for _ in 0..commits {
        let mut txn = rows.begin().unwrap();
        let mut mine = Vec::new();
        for _ in 0..1 + x % 3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = BASE.with(|b| *b.borrow()) + (x % 12) as i32;
            if x.is_multiple_of(5) && live.contains(&k) {
                txn.delete(t, &key(k)).unwrap();
                mine.retain(|(k2, _)| *k2 != k);
                mine.push((k, None));
            } else {
                let v = format!("v{}", x % 1000);
                txn.upsert(t, vec![Value::Int32(k), Value::Text(v.clone())]).unwrap();
                mine.retain(|(k2, _)| *k2 != k);
                mine.push((k, Some(v)));
            }
        }
        if x.is_multiple_of(4) {
            txn.upsert(other, noise.clone()).unwrap();
        }
        let ts = txn.commit().unwrap();
        // A commit's changes come in key order.
        mine.sort_by_key(|(k, _)| key(*k));
        for (k, v) in mine {
            let (op, row) = match v {
                None => ("delete", vec![Value::Null, Value::Null]),
                Some(v) if live.contains(&k) => ("update", vec![Value::Int32(k), Value::Text(v)]),
                Some(v) => ("insert", vec![Value::Int32(k), Value::Text(v)]),
            };
            match op {
                "delete" => live.remove(&k),
                _ => live.insert(k),
            };
            expected.push((op.to_string(), ts, key(k), row));
        }
    }
    expected
}

thread_local! {
    /// The first key a thread's `history` writes (writers on several
    /// threads keep to their own keys).
    static BASE: std::cell::RefCell<i32> = const { std::cell::RefCell::new(0) };
}

fn disk_store(dir: &std::path::Path) -> Store {
    Store::open(StoreOptions { dir: Some(dir.to_path_buf()), checkpoint_wal_bytes: 0, ..StoreOptions::default() }).unwrap()
}

#[test]
fn a_feed_gives_exactly_the_committed_changes_from_any_start() {
    let dir = tempfile::tempdir().unwrap();
    let rows = disk_store(dir.path());
    let start = rows.current_ts();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    // A feed opened now holds the log from here across checkpoints.
    let mut early = ChangeFeed::open(&rows, "t", Some(start + 2), ChangeFeedOptions::default()).unwrap();
    let mut live = HashSet::new();
    let mut expected = history(&rows, t, other, &mut live, 40, 7);
    rows.checkpoint().unwrap();
    // An ALTER of another table stops plain replay; the feed goes past it.
    rows.alter_table("other", &[Alteration::AddColumn(ColumnDef::new("w", DataType::Int64))]).unwrap();
    let (other, _) = rows.table("other").unwrap();
    expected.extend(history(&rows, t, other, &mut live, 40, 11));
    assert_eq!(drain(&mut early, &rows), expected);
    assert_eq!(early.position(), rows.current_ts());

    // From every timestamp on, in batches of every size.
    let last = rows.current_ts();
    for (i, after) in (start + 2..=last).enumerate() {
        let options = ChangeFeedOptions { batch_rows: 1 + i % 5, read_ahead_rows: 1 + i % 7, ..ChangeFeedOptions::default() };
        let mut feed = ChangeFeed::open(&rows, "t", Some(after), options).unwrap();
        let want: Vec<Change> = expected.iter().filter(|c| c.1 > after).cloned().collect();
        assert_eq!(drain(&mut feed, &rows), want, "after {after}");
    }
}

#[test]
fn a_feed_follows_live_commits_and_catches_up_when_it_falls_behind() {
    let dir = tempfile::tempdir().unwrap();
    let rows = disk_store(dir.path());
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    // Two waiting records and the live stream drops the feed, which never
    // holds commits back.
    let options = ChangeFeedOptions { channel_capacity: 2, ..ChangeFeedOptions::default() };
    let mut feed = ChangeFeed::open(&rows, "t", None, options).unwrap();
    assert!(feed.next_batch(Duration::from_millis(10)).unwrap().is_none());
    let mut live = HashSet::new();
    let mut expected = history(&rows, t, other, &mut live, 5, 3);
    assert_eq!(drain(&mut feed, &rows), expected);
    // Far behind the live stream: the rest comes from the log.
    let more = history(&rows, t, other, &mut live, 200, 5);
    rows.checkpoint().unwrap();
    assert_eq!(drain(&mut feed, &rows), more);
    expected.extend(more);
    // Live again, reading while a writer commits on another thread.
    let writer = {
        let rows = rows.clone();
        std::thread::spawn(move || history(&rows, t, other, &mut live, 100, 9))
    };
    let got = read_until(&mut feed, &rows, || writer.is_finished());
    assert_eq!(got, writer.join().unwrap());
    // No deadline at all, then a closed store.
    let mut txn = rows.begin().unwrap();
    txn.upsert(t, vec![Value::Int32(500), Value::Null]).unwrap();
    txn.commit().unwrap();
    assert_eq!(feed.next_batch(Duration::MAX).unwrap().unwrap().num_rows(), 1);
    rows.close().unwrap();
    assert!(matches!(feed.next_batch(Duration::MAX), Err(Error::Row(omen_rowstore::Error::Closed))));
}

/// What the feed gives until `done` and it has given the newest commit;
/// each batch's commits must be visible when it comes. Fails the test past
/// a minute instead of hanging.
fn read_until(feed: &mut ChangeFeed, rows: &Store, done: impl Fn() -> bool) -> Vec<Change> {
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    loop {
        let finished = done();
        match feed.next_batch(Duration::from_millis(50)).unwrap() {
            Some(batch) => {
                assert_eq!(batch.schema(), feed.schema());
                let changes = decode(&batch);
                let visible = rows.current_ts();
                assert!(changes.iter().all(|c| c.1 <= visible), "a commit given before it was visible");
                got.extend(changes);
            }
            None if finished && feed.position() >= rows.current_ts() => return got,
            None => {}
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the feed stalled after {} changes", got.len());
    }
}

#[test]
fn feeds_read_alongside_durable_writers_miss_nothing_and_give_only_visible_commits() {
    let dir = tempfile::tempdir().unwrap();
    let rows = disk_store(dir.path());
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    // A small channel and read-ahead: the feeds fall behind the stream,
    // catch up from the log and join it again, many times.
    let options = ChangeFeedOptions { channel_capacity: 4, read_ahead_rows: 3, batch_rows: 7 };
    let mut from_now = ChangeFeed::open(&rows, "t", None, options.clone()).unwrap();
    let mut from_ts = ChangeFeed::open(&rows, "t", Some(rows.current_ts()), options).unwrap();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let rows = rows.clone();
            std::thread::spawn(move || {
                BASE.with(|b| *b.borrow_mut() = 100 * w);
                history(&rows, t, other, &mut HashSet::new(), 150, 31 + w as u64)
            })
        })
        .collect();
    let done = || writers.iter().all(|w| w.is_finished());
    let got = read_until(&mut from_now, &rows, done);
    let also = read_until(&mut from_ts, &rows, done);
    let mut expected: Vec<Change> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    expected.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    assert_eq!(got, expected);
    assert_eq!(also, expected);
    assert_eq!((from_now.position(), from_ts.position()), (rows.current_ts(), rows.current_ts()));
}

#[test]
fn a_feed_ends_at_its_tables_drop_or_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let rows = disk_store(dir.path());
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    let before = rows.current_ts();
    let mut feed = ChangeFeed::open(&rows, "t", Some(before), ChangeFeedOptions::default()).unwrap();
    let expected = history(&rows, t, other, &mut HashSet::new(), 10, 13);
    let altered = rows.alter_table("t", &[Alteration::AddColumn(ColumnDef::new("w", DataType::Int64))]).unwrap();
    // What came before the rewrite, then the end.
    assert_eq!(decode(&feed.next_batch(Duration::from_secs(1)).unwrap().unwrap()), expected);
    assert!(matches!(feed.next_batch(Duration::from_secs(1)), Err(Error::FeedEnded(_))));
    assert!(matches!(feed.next_batch(Duration::from_secs(1)), Err(Error::FeedEnded(_))));

    // The new table from before the rewrite: its rows are not in the log.
    let mut feed = ChangeFeed::open(&rows, "t", Some(before), ChangeFeedOptions::default()).unwrap();
    assert!(matches!(feed.next_batch(Duration::from_secs(1)), Err(Error::FeedEnded(m)) if m.contains("ALTER TABLE")));
    // From the rewrite on, it is fine.
    let mut feed = ChangeFeed::open(&rows, "t", Some(altered), ChangeFeedOptions::default()).unwrap();
    let mut txn = rows.begin().unwrap();
    let (t2, _) = rows.table("t").unwrap();
    txn.insert(t2, vec![Value::Int32(1), Value::Null, Value::Int64(5)]).unwrap();
    let ts = txn.commit().unwrap();
    let batch = feed.next_batch(Duration::from_secs(1)).unwrap().unwrap();
    assert_eq!((batch.num_rows(), batch.num_columns()), (1, 6));
    assert_eq!(batch.column(1).as_primitive::<UInt64Type>().value(0), ts);
    rows.drop_table("t").unwrap();
    assert!(matches!(feed.next_batch(Duration::from_secs(1)), Err(Error::FeedEnded(_))));
    assert!(matches!(ChangeFeed::open(&rows, "t", Some(ts), ChangeFeedOptions::default()), Err(Error::Row(_))));
}

#[test]
fn a_feed_refuses_what_the_log_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let rows = disk_store(dir.path());
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    let before = rows.current_ts();
    history(&rows, t, other, &mut HashSet::new(), 10, 17);
    rows.checkpoint().unwrap();
    let err = ChangeFeed::open(&rows, "t", Some(before), ChangeFeedOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Row(omen_rowstore::Error::LogTrimmed { .. })), "{err}");
    assert!(matches!(
        ChangeFeed::open(&rows, "t", Some(rows.current_ts() + 5), ChangeFeedOptions::default()),
        Err(Error::Row(omen_rowstore::Error::AheadOfStore { .. }))
    ));

    // An in-memory store keeps no log: feeds start at the newest commit,
    // and one that falls behind the live stream fails.
    let rows = Store::open(StoreOptions::default()).unwrap();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let (other, _) = rows.create_table(schema("other")).unwrap();
    let options = ChangeFeedOptions { channel_capacity: 4, ..ChangeFeedOptions::default() };
    let mut feed = ChangeFeed::open(&rows, "t", None, options).unwrap();
    assert!(feed.next_batch(Duration::from_millis(10)).unwrap().is_none());
    let mut live = HashSet::new();
    let expected = history(&rows, t, other, &mut live, 3, 19);
    assert_eq!(drain(&mut feed, &rows), expected);
    let err = ChangeFeed::open(&rows, "t", Some(1), ChangeFeedOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Row(omen_rowstore::Error::LogTrimmed { .. })), "{err}");
    // From the newest commit, even with commits between reading it and
    // opening (none here): nothing to read from a log.
    let mut from_newest = ChangeFeed::open(&rows, "t", Some(rows.current_ts()), ChangeFeedOptions::default()).unwrap();
    let more = history(&rows, t, other, &mut live, 20, 23);
    assert_eq!(drain(&mut from_newest, &rows), more);
    let err = drain_err(&mut feed);
    assert!(matches!(&err, Error::FeedEnded(m) if m.contains("in-memory")), "{err}");
}

fn drain_err(feed: &mut ChangeFeed) -> Error {
    loop {
        match feed.next_batch(Duration::from_millis(50)) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the feed should have failed"),
            Err(e) => return e,
        }
    }
}
