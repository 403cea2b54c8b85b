//! The change feed for applications: one table's committed changes after a
//! timestamp, in commit order, as Arrow batches — what Debezium gives
//! PostgreSQL users, in-process.
//!
//! A feed reads the row store's log ([`Store::replay_changes`]) until it
//! has caught up, then the live change stream. It never holds commits back:
//! its live subscription is dropped when it falls behind
//! ([`Store::subscribe_or_drop`]) and it goes back to the log, which it
//! holds ([`Store::hold_log`]) from what it has delivered on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BinaryArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use omen_rowstore::{Change, ChangeOp, ChangeRecord, LogHold, RowChange, Store, Subscription, TableId, TableSchema, Ts, Value};

use crate::convert::{arrow_schema, rows_to_batch};
use crate::error::{Error, Result};

/// Tuning for a [`ChangeFeed`].
#[derive(Debug, Clone)]
pub struct ChangeFeedOptions {
    /// Rows a batch aims at: a batch holds whole commits, so it ends at the
    /// first commit that reaches this many. Default 8192.
    pub batch_rows: usize,
    /// Live records that may wait unreceived before the feed is dropped
    /// to the log. Default 4096.
    pub channel_capacity: usize,
    /// Changes read ahead from the log at a time while catching up.
    /// Default 65,536.
    pub read_ahead_rows: usize,
}

impl Default for ChangeFeedOptions {
    fn default() -> Self {
        Self { batch_rows: 8192, channel_capacity: 4096, read_ahead_rows: 1 << 16 }
    }
}

/// One table's changes after a timestamp (see the module docs).
///
/// Each batch has the columns `op` (`"insert"`, `"update"` or
/// `"delete"`), `commit_ts`, `key` (the encoded primary key, as in
/// [`omen_rowstore::encode_key`]) and then the table's columns, all
/// nullable: a delete carries its key and nulls. A commit is given once it
/// is visible (under `Durability::Full`, durable). [`ChangeFeed::position`]
/// is where a later feed resumes with nothing missed or repeated.
pub struct ChangeFeed {
    rows: Store,
    table: TableId,
    schema: Arc<TableSchema>,
    rows_schema: SchemaRef,
    out: SchemaRef,
    options: ChangeFeedOptions,
    /// Every commit at or below it was delivered; never past the visible.
    delivered: Ts,
    /// Every commit at or below it was read (into `buffer`).
    read: Ts,
    /// Commits read and not delivered, this table's changes only.
    buffer: VecDeque<(Ts, Vec<RowChange>)>,
    buffered_rows: usize,
    /// Reading the live stream.
    live: Option<Subscription>,
    /// Subscribed, catching up: the stream gives the commits after the
    /// timestamp, the log must first give those up to it.
    joining: Option<(Subscription, Ts)>,
    hold: LogHold,
    /// Whether it has read the live stream (then a log it cannot read
    /// means it fell behind).
    joined: bool,
    /// Why the feed has no more to give, once it has none.
    ended: Option<String>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").field("table", &self.schema.name).field("position", &self.delivered).finish_non_exhaustive()
    }
}

/// How long a feed sleeps while a commit it has is not visible yet (its
/// group's sync), or the log it needs is not.
const NAP: Duration = Duration::from_micros(500);

impl ChangeFeed {
    /// A feed of the table named `table` from the commit after `after`, or,
    /// with `None`, of the commits given timestamps from now on.
    ///
    /// Fails with [`omen_rowstore::Error::LogTrimmed`] when a checkpoint
    /// has already removed part of the log after `after` (an in-memory
    /// store keeps no log: there only the newest commit's timestamp
    /// works), and with [`omen_rowstore::Error::AheadOfStore`] past the
    /// newest commit.
    pub fn open(rows: &Store, table: &str, after: Option<Ts>, options: ChangeFeedOptions) -> Result<Self> {
        let (id, schema) = rows.table(table).ok_or_else(|| omen_rowstore::Error::UnknownTable(table.into()))?;
        let (read, delivered, joining, hold) = match after {
            Some(after) => (after, after, None, rows.hold_log(after)?),
            None => {
                // Subscribed first: every commit after `start` is in the
                // stream. The log is held from the newest visible commit,
                // for when the feed falls behind.
                let (sub, start) = rows.subscribe_or_drop(options.channel_capacity);
                let (visible, hold) = loop {
                    let visible = rows.current_ts();
                    match rows.hold_log(visible) {
                        Ok(hold) => break (visible, hold),
                        // A checkpoint moved past it meanwhile.
                        Err(omen_rowstore::Error::LogTrimmed { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                };
                (start, visible.min(start), Some((sub, start)), hold)
            }
        };
        let rows_schema = Arc::new(Schema::new(
            arrow_schema(&schema).fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<Field>>(),
        ));
        let mut fields = vec![
            Field::new("op", arrow::datatypes::DataType::Utf8, false),
            Field::new("commit_ts", arrow::datatypes::DataType::UInt64, false),
            Field::new("key", arrow::datatypes::DataType::Binary, false),
        ];
        fields.extend(rows_schema.fields().iter().map(|f| f.as_ref().clone()));
        let mut feed = Self {
            rows: rows.clone(),
            table: id,
            schema,
            rows_schema,
            out: Arc::new(Schema::new(fields)),
            options,
            delivered,
            read,
            buffer: VecDeque::new(),
            buffered_rows: 0,
            live: None,
            joining,
            hold,
            joined: false,
            ended: None,
        };
        // Checked now: the log may be gone by the first read.
        feed.catch_up()?;
        Ok(feed)
    }

    /// The batches' schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.out)
    }

    /// Every commit at or below it has been delivered: open a feed after
    /// it to go on from here. Never past the newest visible commit.
    pub fn position(&self) -> Ts {
        self.delivered
    }

    /// The next batch of changes, waiting up to `timeout` for one;
    /// `Ok(None)` if none came. Fails once the table is dropped or
    /// rewritten by ALTER TABLE (whose rows the log does not hold), when
    /// the log the feed needs was removed, when an in-memory store's feed
    /// falls behind the live stream, and when the store closes.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Option<RecordBatch>> {
        // A timeout too long to add is as good as none.
        let deadline = Instant::now().checked_add(timeout);
        let remaining = |now: Instant| deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
        loop {
            let visible = self.rows.current_ts();
            if self.buffer.front().is_some_and(|(ts, _)| *ts <= visible) {
                return self.take_batch(visible).map(Some);
            }
            if self.buffer.is_empty() {
                self.settle(visible);
                if let Some(why) = &self.ended {
                    return Err(Error::FeedEnded(why.clone()));
                }
            }
            if self.rows.is_closed() {
                return Err(omen_rowstore::Error::Closed.into());
            }
            let left = remaining(Instant::now());
            match &self.live {
                None => {
                    if !self.catch_up()? && !left.is_zero() {
                        std::thread::sleep(NAP.min(left));
                    }
                }
                // With nothing waiting, wait for the stream; with a commit
                // that is not visible yet (its sync under way), look and nap.
                Some(live) => {
                    let waiting = !self.buffer.is_empty();
                    match live.recv_timeout(if waiting { Duration::ZERO } else { left }) {
                        Ok(Some(record)) => {
                            self.take(&record);
                            self.receive_waiting();
                        }
                        Ok(None) if waiting && !left.is_zero() => std::thread::sleep(NAP.min(left)),
                        Ok(None) => {}
                        Err(_) if live.fell_behind() => self.live = None,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let deliverable = self.buffer.front().is_some_and(|(ts, _)| *ts <= self.rows.current_ts());
            if !deliverable && remaining(Instant::now()).is_zero() {
                return Ok(None);
            }
        }
    }

    /// Takes what waits in the live stream, up to a batch.
    fn receive_waiting(&mut self) {
        while self.buffered_rows < self.options.batch_rows
            && let Some(Ok(Some(record))) = self.live.as_ref().map(Subscription::try_recv)
        {
            self.take(&record);
        }
    }

    /// Reads the log after `read` into the buffer, up to the read-ahead;
    /// goes live once it has read every commit the subscription does not
    /// give. Whether it moved on.
    fn catch_up(&mut self) -> Result<bool> {
        let (sub, start) = match self.joining.take() {
            Some((sub, start)) if !sub.fell_behind() => (sub, start),
            // Subscribed before reading the log: nothing falls between.
            _ => self.rows.subscribe_or_drop(self.options.channel_capacity),
        };
        let before = self.read;
        let limit = self.options.read_ahead_rows.max(1);
        // The log gives only visible commits: live records read past them
        // (their group's sync under way) wait until they are.
        if self.read < start && self.read < self.rows.current_ts() && self.buffered_rows < limit {
            let rows = self.rows.clone();
            let replayed = rows.replay_changes(self.read, |record| {
                self.take(&record);
                self.buffered_rows < limit && self.ended.is_none()
            });
            match replayed {
                Ok(_) => {}
                Err(omen_rowstore::Error::NotReplayable { ts, rewrote: Some((old, new)), .. }) => {
                    if new == self.table {
                        self.end(format!(
                            "table {} was made by ALTER TABLE at timestamp {ts}, whose rows the log does not hold; \
                             open the feed after {ts}",
                            self.schema.name
                        ));
                    } else if old != self.table {
                        // Another table's: nothing of this one in it.
                        self.read = self.read.max(ts);
                    }
                }
                Err(omen_rowstore::Error::LogTrimmed { .. }) if self.joined && self.rows.io_backend().is_none() => {
                    return Err(Error::FeedEnded(format!(
                        "the feed of table {} fell behind the live stream, and an in-memory database keeps no log to catch up from",
                        self.schema.name
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if self.read >= start || self.ended.is_some() {
            self.live = Some(sub);
            self.joined = true;
        } else {
            self.joining = Some((sub, start));
        }
        Ok(self.read > before || self.live.is_some())
    }

    fn end(&mut self, why: String) {
        self.ended.get_or_insert(why);
    }

    /// Takes one record of the stream (log or live) into the buffer.
    fn take(&mut self, record: &ChangeRecord) {
        if record.ts <= self.read || self.ended.is_some() {
            return;
        }
        self.read = record.ts;
        match &record.change {
            Change::Commit(changes) => {
                let mine: Vec<RowChange> = changes.iter().filter(|c| c.table == self.table).cloned().collect();
                if !mine.is_empty() {
                    self.buffered_rows += mine.len();
                    self.buffer.push_back((record.ts, mine));
                }
            }
            Change::DropTable { id } if *id == self.table => self.end(format!(
                "table {} was dropped or rewritten by ALTER TABLE at timestamp {}; open a new feed",
                self.schema.name, record.ts
            )),
            _ => {}
        }
    }

    /// With nothing of this table waiting, what was read and is visible is
    /// delivered too, and the log before it may go.
    fn settle(&mut self, visible: Ts) {
        let upto = self.read.min(visible);
        if self.buffer.is_empty() && self.delivered < upto {
            self.delivered = upto;
            self.hold.advance(upto);
        }
    }

    /// Whole visible commits from the buffer, up to the batch size.
    fn take_batch(&mut self, visible: Ts) -> Result<RecordBatch> {
        let mut commits = Vec::new();
        let mut n = 0;
        while n < self.options.batch_rows.max(1)
            && self.buffer.front().is_some_and(|(ts, _)| *ts <= visible)
            && let Some(commit) = self.buffer.pop_front()
        {
            n += commit.1.len();
            commits.push(commit);
        }
        self.buffered_rows -= n;
        let changes: Vec<(Ts, &RowChange)> = commits.iter().flat_map(|(ts, cs)| cs.iter().map(move |c| (*ts, c))).collect();
        let nulls: Vec<Value> = vec![Value::Null; self.schema.columns.len()];
        let rows: Vec<&[Value]> = changes.iter().map(|(_, c)| c.row.as_deref().unwrap_or(&nulls)).collect();
        let values = rows_to_batch(&self.schema, &self.rows_schema, &rows)?;
        let op = |c: &RowChange| match c.op {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(changes.iter().map(|(_, c)| Some(op(c))).collect::<StringArray>()),
            Arc::new(changes.iter().map(|(ts, _)| *ts).collect::<UInt64Array>()),
            Arc::new(changes.iter().map(|(_, c)| Some(c.key.as_slice())).collect::<BinaryArray>()),
        ];
        columns.extend(values.columns().iter().cloned());
        let batch = RecordBatch::try_new(Arc::clone(&self.out), columns)?;
        if let Some((ts, _)) = commits.last() {
            self.delivered = *ts;
            self.hold.advance(*ts);
        }
        self.settle(visible);
        Ok(batch)
    }
}
