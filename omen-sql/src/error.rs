//! omen-sql's error type, and the mapping from the layers below.

use datafusion::error::DataFusionError;

/// Result with omen-sql's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a SQL statement can fail with. Every error leaves the database as it
/// was before the statement (and, inside a transaction, aborts it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not valid SQL.
    #[error("syntax error: {0}")]
    Parse(String),
    /// A table that does not exist.
    #[error("table {0:?} does not exist")]
    UnknownTable(String),
    /// A column that does not exist.
    #[error("column does not exist: {0}")]
    UnknownColumn(String),
    /// Well-formed SQL that cannot be planned: type mismatches, unknown
    /// functions, ambiguous names.
    #[error("invalid statement: {0}")]
    Plan(String),
    /// A duplicate primary key or a duplicate in a unique index.
    #[error("constraint violation: {0}")]
    UniqueViolation(String),
    /// A NULL in a NOT NULL column.
    #[error("constraint violation: {0}")]
    NotNull(String),
    /// A value that does not fit its column's type.
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// A concurrent transaction wrote the same row first. Retryable: run the
    /// transaction again.
    #[error("serialization conflict: {0}")]
    SerializationConflict(String),
    /// A READ COMMITTED statement waited too long for a row another
    /// transaction holds: possibly a deadlock, which OmenDB does not detect
    /// by itself. Retryable, as [`Error::SerializationConflict`].
    #[error("deadlock detected: {0}")]
    Deadlock(String),
    /// A READ COMMITTED statement waited longer than the session's
    /// `lock_timeout` for a row another transaction holds.
    #[error("lock not available: {0}")]
    LockNotAvailable(String),
    /// Wrong number or type of `$n` parameters.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// The statement failed while running (division by zero, an invalid
    /// cast of a value, the memory budget exceeded).
    #[error("execution error: {0}")]
    Execution(String),
    /// A SQL construct OmenDB does not support (yet); the message names it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An earlier statement of this transaction failed; only ROLLBACK (or
    /// COMMIT, which rolls back) is accepted until the transaction ends.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,
    /// A savepoint statement outside a transaction block; names the
    /// statement.
    #[error("{0} can only be used in transaction blocks")]
    NoTransaction(&'static str),
    /// A statement that must come first in its transaction block came
    /// later; says what.
    #[error("{0}")]
    ActiveTransaction(&'static str),
    /// `ROLLBACK TO` or `RELEASE` of a savepoint that does not exist.
    #[error("savepoint {0:?} does not exist")]
    UnknownSavepoint(String),
    /// `SET` or `SHOW` of a setting OmenDB does not know.
    #[error("unrecognized configuration parameter {0:?}")]
    UnknownSetting(String),
    /// A file-system error.
    #[error("I/O error: {0}")]
    Io(String),
    /// Stored data failed its checksum or does not parse.
    #[error("corruption: {0}")]
    Corruption(String),
    /// The database is closed.
    #[error("the database is closed")]
    Closed,
    /// A broken invariant inside OmenDB: a bug, please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether running the transaction again can succeed: a serialization
    /// conflict or a deadlock.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::SerializationConflict(_) | Error::Deadlock(_))
    }

    /// The PostgreSQL error code (SQLSTATE) of this error, for clients that
    /// act on codes: 40001 means retry, 23505 a duplicate, and so on.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Parse(_) => "42601",
            Error::UnknownTable(_) => "42P01",
            Error::UnknownColumn(_) => "42703",
            Error::Plan(m) if m.contains("already exists") => "42P07",
            Error::Plan(_) => "42000",
            Error::UniqueViolation(_) => "23505",
            Error::NotNull(_) => "23502",
            Error::Constraint(_) => "22000",
            Error::SerializationConflict(_) => "40001",
            Error::Deadlock(_) => "40P01",
            Error::LockNotAvailable(_) => "55P03",
            Error::Parameter(_) => "22023",
            Error::Execution(m) if m.contains("ivide by zero") => "22012",
            // numeric_value_out_of_range: integer overflow (`checked.rs`) and
            // values that do not fit the column's type.
            Error::Execution(m) if m.contains(" out of range") || m.contains("Can't cast value") => "22003",
            Error::Execution(_) => "22000",
            Error::Unsupported(_) => "0A000",
            Error::TransactionAborted => "25P02",
            Error::NoTransaction(_) => "25P01",
            Error::ActiveTransaction(_) => "25001",
            Error::UnknownSavepoint(_) => "3B001",
            Error::UnknownSetting(_) => "42704",
            Error::Io(_) => "58030",
            Error::Corruption(_) => "XX001",
            Error::Closed => "57P01",
            Error::Internal(_) => "XX000",
        }
    }
}

impl From<omen_rowstore::Error> for Error {
    fn from(e: omen_rowstore::Error) -> Self {
        use omen_rowstore::Error as E;
        match e {
            E::UnknownTable(t) => Error::UnknownTable(t),
            E::TableExists(t) => Error::Plan(format!("relation {t:?} already exists")),
            e @ (E::DuplicateKey { .. } | E::UniqueViolation { .. }) => Error::UniqueViolation(e.to_string()),
            e @ E::NotNull { .. } => Error::NotNull(e.to_string()),
            e @ E::Schema { .. } => Error::Constraint(e.to_string()),
            E::UnknownColumn { column, .. } => Error::UnknownColumn(column),
            E::ColumnExists { table, column } => Error::Plan(format!("column {column:?} of relation {table:?} already exists")),
            E::IndexExists(i) => Error::Plan(format!("relation {i:?} already exists")),
            E::UnknownIndex(i) => Error::Plan(format!("index {i:?} does not exist")),
            e @ E::LockTimeout { .. } => Error::Execution(e.to_string()),
            e @ E::SerializationConflict { .. } => Error::SerializationConflict(e.to_string()),
            E::Closed | E::TransactionClosed => Error::Closed,
            E::Io(e) => Error::Io(e.to_string()),
            e @ (E::Corruption { .. } | E::Decode(_)) => Error::Corruption(e.to_string()),
            e @ E::WalFailed(_) => Error::Io(e.to_string()),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<omen_sync::Error> for Error {
    fn from(e: omen_sync::Error) -> Self {
        match e {
            omen_sync::Error::Row(e) => e.into(),
            omen_sync::Error::Conversion(msg) => Error::Constraint(msg),
            omen_sync::Error::Stopped => Error::Closed,
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        use datafusion::common::SchemaError;
        match e.find_root() {
            DataFusionError::SQL(e, _) => Error::Parse(e.to_string()),
            DataFusionError::SchemaError(s, _) => match s.as_ref() {
                SchemaError::FieldNotFound { field, .. } => Error::UnknownColumn(field.name().to_string()),
                other => Error::Plan(other.to_string()),
            },
            DataFusionError::NotImplemented(m) => Error::Unsupported(m.clone()),
            DataFusionError::Plan(m) => Error::Plan(m.clone()),
            DataFusionError::Execution(m) => Error::Execution(m.clone()),
            DataFusionError::ResourcesExhausted(m) => Error::Execution(format!("memory budget exceeded: {m}")),
            DataFusionError::ArrowError(e, _) => Error::Execution(e.to_string()),
            DataFusionError::IoError(e) => Error::Io(e.to_string()),
            DataFusionError::External(inner) => Error::Execution(inner.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Execution(e.to_string())
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for Error {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        Error::Parse(e.to_string())
    }
}
