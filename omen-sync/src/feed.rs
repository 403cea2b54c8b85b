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
/// nullable: a delete carries its key and nulls. [`ChangeFeed::position`]
/// is where a later feed resumes with nothing missed or repeated.
pub struct ChangeFeed {
    rows: Store,
    table: TableId,
    schema: Arc<TableSchema>,
    rows_schema: SchemaRef,
    out: SchemaRef,
    options: ChangeFeedOptions,
    /// Every commit at or below it was delivered.
    delivered: Ts,
    /// Every commit at or below it was read (into `buffer`).
    read: Ts,
    /// Commits read and not delivered, this table's changes only.
    buffer: VecDeque<(Ts, Vec<RowChange>)>,
    buffered_rows: usize,
    live: Option<Subscription>,
    hold: LogHold,
    /// Why the feed has no more to give, once it has none.
    ended: Option<String>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").field("table", &self.schema.name).field("position", &self.delivered).finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed of the table named `table` from the commit after `after`, or
    /// from the next commit with `None`.
    ///
    /// Fails with [`omen_rowstore::Error::LogTrimmed`] when a checkpoint
    /// has already removed part of the log after `after` (an in-memory
    /// store keeps no log: its feeds start at the next commit), and with
    /// [`omen_rowstore::Error::AheadOfStore`] past the newest commit.
    pub fn open(rows: &Store, table: &str, after: Option<Ts>, options: ChangeFeedOptions) -> Result<Self> {
        let (id, schema) = rows.table(table).ok_or_else(|| omen_rowstore::Error::UnknownTable(table.into()))?;
        // From now: subscribed before reading the clock, nothing falls
        // between the two.
        let (after, live) = match after {
            Some(after) => (after, None),
            None => {
                let sub = rows.subscribe_or_drop(options.channel_capacity);
                (rows.current_ts(), Some(sub))
            }
        };
        let hold = rows.hold_log(after)?;
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
            delivered: after,
            read: after,
            buffer: VecDeque::new(),
            buffered_rows: 0,
            live: None,
            hold,
            ended: None,
        };
        feed.live = live;
        // Checked now: the log may be gone by the first read.
        if feed.live.is_none() {
            feed.catch_up()?;
        }
        Ok(feed)
    }

    /// The batches' schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.out)
    }

    /// Every commit at or below it has been delivered: open a feed after
    /// it to go on from here.
    pub fn position(&self) -> Ts {
        self.delivered
    }

    /// The next batch of changes, waiting up to `timeout` for one;
    /// `Ok(None)` if none came. Fails once the table is dropped or
    /// rewritten by ALTER TABLE (whose rows the log does not hold), when
    /// the log the feed needs was removed, and when the store closes.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Option<RecordBatch>> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buffer.is_empty() {
                return self.take_batch().map(Some);
            }
            if let Some(why) = &self.ended {
                return Err(Error::FeedEnded(why.clone()));
            }
            let Some(live) = &self.live else {
                self.catch_up()?;
                continue;
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            match live.recv_timeout(wait) {
                Ok(Some(record)) => {
                    self.take(&record);
                    while self.buffered_rows < self.options.batch_rows
                        && let Some(record) = self.live.as_ref().and_then(Subscription::try_recv)
                    {
                        self.take(&record);
                    }
                }
                Ok(None) => return Ok(None),
                Err(_) if live.fell_behind() => self.live = None,
                Err(e) => return Err(e.into()),
            }
            if self.buffer.is_empty() && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Reads the log after `read` into the buffer, up to the read-ahead;
    /// subscribes to the live stream once it reaches the newest commit.
    fn catch_up(&mut self) -> Result<()> {
        // Before the log: a commit after the log's end is then in the
        // stream (records the log gave already are skipped there).
        let sub = self.rows.subscribe_or_drop(self.options.channel_capacity);
        let limit = self.options.read_ahead_rows.max(1);
        let rows = self.rows.clone();
        let mut last_created = None;
        let replayed = rows.replay_changes(self.read, |record| {
            last_created = match &record.change {
                Change::CreateTable { id, .. } => Some(*id),
                _ => None,
            };
            self.take(&record);
            self.buffered_rows < limit && self.ended.is_none()
        });
        match replayed {
            Ok(_) if self.buffered_rows >= limit || self.ended.is_some() => {}
            Ok(_) => self.live = Some(sub),
            // ALTER TABLE: it ends a feed of the table it drops (in `take`)
            // and one of the table it makes, whose rows the log lacks.
            Err(omen_rowstore::Error::NotReplayable { ts, .. }) if last_created == Some(self.table) => {
                self.ended = Some(format!(
                    "table {} was made by ALTER TABLE at timestamp {ts}, whose rows the log does not hold; \
                     open the feed after {ts}",
                    self.schema.name
                ));
            }
            // Another table's: nothing of this one in it.
            Err(omen_rowstore::Error::NotReplayable { ts, .. }) => self.read = self.read.max(ts),
            Err(e) => return Err(e.into()),
        }
        Ok(())
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
            Change::DropTable { id } if *id == self.table => {
                self.ended = Some(format!(
                    "table {} was dropped or rewritten by ALTER TABLE at timestamp {}; open a new feed",
                    self.schema.name, record.ts
                ));
            }
            _ => {}
        }
        self.settle();
    }

    /// With nothing of this table waiting, what was read is delivered too,
    /// and the log before it may go.
    fn settle(&mut self) {
        if self.buffer.is_empty() && self.delivered < self.read {
            self.delivered = self.read;
            self.hold.advance(self.delivered);
        }
    }

    /// Whole commits from the buffer, up to the batch size.
    fn take_batch(&mut self) -> Result<RecordBatch> {
        let mut commits = Vec::new();
        let mut n = 0;
        while n < self.options.batch_rows.max(1)
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
        self.settle();
        Ok(batch)
    }
}
