//! The facade's error type: one enum for everything an application sees.

use std::path::PathBuf;

/// Result with OmenDB's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by what the caller can do about it.
///
/// Every error leaves the database as it was before the failing call: a
/// failed statement inside a [`crate::Transaction`] aborts that transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SQL text does not parse.
    #[error("syntax error: {0}")]
    Parse(String),
    /// A table that does not exist.
    #[error("table {0:?} does not exist")]
    UnknownTable(String),
    /// A column that does not exist.
    #[error("column does not exist: {0}")]
    UnknownColumn(String),
    /// Valid SQL that cannot be planned (type mismatch, unknown function,
    /// ambiguous name, a table that already exists).
    #[error("invalid statement: {0}")]
    Plan(String),
    /// A duplicate primary key, a NULL in a NOT NULL column, or a value that
    /// does not fit its column.
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// Another transaction wrote the same row first. Retryable: roll back and
    /// run the transaction again (see [`Error::is_retryable`]).
    #[error("serialization conflict: {0}")]
    SerializationConflict(String),
    /// Wrong number of `$n` parameters, or a value that does not convert to
    /// the parameter's type.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// The statement failed while running: division by zero, a bad cast,
    /// the memory budget exceeded.
    #[error("execution error: {0}")]
    Execution(String),
    /// A SQL construct or option OmenDB does not support; the message names it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A statement failed earlier in this transaction, which was rolled back.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// A file-system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data failed its checksum or does not parse. Nothing was served
    /// from it.
    #[error("corruption: {0}")]
    Corruption(String),
    /// Another handle (in this or another process) has the directory open.
    #[error("database directory {} is locked by {holder}", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says (`pid=...`).
        holder: String,
    },
    /// A change feed cannot give what was asked: its table was dropped or
    /// rewritten by ALTER TABLE, or the log no longer holds the changes
    /// after the position it was opened at (see [`crate::ChangeFeed`]).
    #[error("change feed: {0}")]
    FeedUnavailable(String),
    /// The database was closed.
    #[error("the database is closed")]
    Closed,
    /// A broken invariant inside OmenDB: a bug, please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True for errors that go away when the transaction is retried.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::SerializationConflict(_))
    }
}

impl From<omen_sql::Error> for Error {
    fn from(e: omen_sql::Error) -> Self {
        use omen_sql::Error as E;
        match e {
            E::Parse(m) => Error::Parse(m),
            E::UnknownTable(m) => Error::UnknownTable(m),
            E::UnknownColumn(m) => Error::UnknownColumn(m),
            E::Plan(m) => Error::Plan(m),
            E::Constraint(m) | E::UniqueViolation(m) | E::NotNull(m) => Error::Constraint(m),
            E::UnknownSetting(m) => Error::Plan(format!("unrecognized configuration parameter {m:?}")),
            E::SerializationConflict(m) => Error::SerializationConflict(m),
            e @ E::Deadlock(_) => Error::SerializationConflict(e.to_string()),
            E::Parameter(m) => Error::Parameter(m),
            E::Execution(m) => Error::Execution(m),
            E::Unsupported(m) => Error::Unsupported(m),
            E::TransactionAborted => Error::TransactionAborted,
            e @ (E::NoTransaction(_) | E::UnknownSavepoint(_) | E::ActiveTransaction(_)) => Error::Plan(e.to_string()),
            e @ E::LockNotAvailable(_) => Error::Execution(e.to_string()),
            E::Io(m) => Error::Io(std::io::Error::other(m)),
            E::Corruption(m) => Error::Corruption(m),
            E::Closed => Error::Closed,
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<omen_rowstore::Error> for Error {
    fn from(e: omen_rowstore::Error) -> Self {
        omen_sql::Error::from(e).into()
    }
}

impl From<omen_sync::Error> for Error {
    fn from(e: omen_sync::Error) -> Self {
        use omen_rowstore::Error as R;
        match e {
            e @ (omen_sync::Error::FeedEnded(_)
            | omen_sync::Error::Row(R::LogTrimmed { .. } | R::AheadOfStore { .. } | R::NotReplayable { .. })) => {
                Error::FeedUnavailable(e.to_string())
            }
            e => omen_sql::Error::from(e).into(),
        }
    }
}
