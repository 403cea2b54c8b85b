//! The row store's error type.

use std::path::PathBuf;

/// Result with the row store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the row store.
///
/// Every variant leaves the store unchanged: a failed write is rolled back
/// before the error reaches the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No table of that name (or id) exists.
    #[error("table {0:?} does not exist")]
    UnknownTable(String),
    /// `create_table` of a name that is taken.
    #[error("table {0:?} already exists")]
    TableExists(String),
    /// An insert of a key that already has a live row.
    #[error("duplicate key value violates the primary key of table {table:?}: {key}")]
    DuplicateKey {
        /// The table.
        table: String,
        /// The key's column values, as text.
        key: String,
    },
    /// A write that would give two live rows the same values in a unique
    /// index (or a unique index built over rows that repeat them).
    #[error("duplicate key value violates unique constraint {index:?} of table {table:?}: {key}")]
    UniqueViolation {
        /// The index.
        index: String,
        /// Its table.
        table: String,
        /// The indexed columns and values, as text.
        key: String,
    },
    /// An alteration names a column the table does not have.
    #[error("column {column:?} of table {table:?} does not exist")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// An alteration adds or renames a column to a name the table has.
    #[error("column {column:?} of table {table:?} already exists")]
    ColumnExists {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `create_index` with a name that is taken.
    #[error("index {0:?} already exists")]
    IndexExists(String),
    /// No index of that name exists.
    #[error("index {0:?} does not exist")]
    UnknownIndex(String),
    /// Index DDL waited too long for open transactions that wrote its table.
    /// Retryable once they finish.
    #[error("timed out waiting for open transactions that wrote table {table:?}")]
    LockTimeout {
        /// The table.
        table: String,
    },
    /// A NULL for a column declared NOT NULL (primary-key columns are NOT NULL).
    #[error("null value in column {column:?} of table {table:?} violates not-null constraint")]
    NotNull {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A row that does not fit the table's schema (wrong arity or value type).
    #[error("row does not match table {table:?}: {reason}")]
    Schema {
        /// The table.
        table: String,
        /// What does not match.
        reason: String,
    },
    /// Another transaction wrote the same row first (first updater wins), or
    /// committed a newer version after this transaction's snapshot.
    ///
    /// Retryable: roll back and run the transaction again.
    #[error("could not serialize access due to concurrent update of table {table:?}")]
    SerializationConflict {
        /// The table of the contended row.
        table: String,
    },
    /// The transaction has already committed or rolled back.
    #[error("the transaction is no longer active")]
    TransactionClosed,
    /// The store has been closed.
    #[error("the row store is closed")]
    Closed,
    /// An I/O error from the file system.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A file's content failed its checksum or does not parse.
    #[error("corrupt file {}: at byte {offset}: {reason}", file.display())]
    Corruption {
        /// The file.
        file: PathBuf,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Bytes that should hold an encoded row or value do not decode.
    #[error("undecodable row data: {0}")]
    Decode(String),
    /// The change stream after `after` is no longer in the log: a
    /// checkpoint removed the log through `trimmed` (hold the log with
    /// [`crate::Store::hold_log`] to keep what a reader still needs).
    #[error("the log no longer holds the changes after timestamp {after}: it was removed through {trimmed}")]
    LogTrimmed {
        /// The timestamp asked for.
        after: u64,
        /// Every change after this one is still in the log.
        trimmed: u64,
    },
    /// A reader asked for changes after a timestamp the store has not
    /// reached: it consumed records a crash (or a failed log write) then
    /// lost, and later commits may reuse those timestamps.
    #[error("changes after timestamp {after} were asked for, but the store's newest commit is {newest}")]
    AheadOfStore {
        /// The timestamp asked for.
        after: u64,
        /// The store's newest committed timestamp.
        newest: u64,
    },
    /// The change stream cannot be replayed past this record (see
    /// [`crate::Store::replay_changes`]).
    #[error("the change stream cannot be replayed past timestamp {ts}: {reason}")]
    NotReplayable {
        /// The record's timestamp.
        ts: u64,
        /// For an ALTER TABLE: the table it dropped and the one it made.
        rewrote: Option<(crate::TableId, crate::TableId)>,
        /// Why.
        reason: String,
    },
    /// An earlier WAL write or fsync failed; the store accepts no more commits
    /// because the kernel may have dropped the unsynced pages. Reopen the store.
    #[error("the write-ahead log failed earlier ({0}); reopen the database")]
    WalFailed(String),
}

/// Whether the failpoint `name` fires: the `fail` crate's failpoints exist
/// only under the `failpoints` feature (fault-injection tests); otherwise
/// this is `false` and costs nothing.
#[inline]
pub(crate) fn failpoint(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(name, |_| ()).is_some()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// The error a fired failpoint stands for: an I/O error naming it.
pub(crate) fn injected(name: &str) -> std::io::Error {
    std::io::Error::other(format!("failpoint {name}"))
}

impl From<omen_files::codec::DecodeError> for Error {
    fn from(e: omen_files::codec::DecodeError) -> Self {
        Error::Decode(e.to_string())
    }
}
