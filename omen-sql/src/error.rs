//! OmenDB's error type, the one the facade re-exports, and the mapping
//! from the layers below.
//!
//! Each variant is a kind of failure a caller can act on, and
//! [`Error::sqlstate`] maps variants, never message text, to PostgreSQL's
//! codes. The conversions from the stores' errors are structural. Arrow's
//! and DataFusion's errors are partly plain text (a failed cast is one
//! `CastError(String)` whether the value overflowed or did not parse), so
//! the conversion from them reads that text, once, here; nothing above
//! this file decides anything by a message.

use std::path::PathBuf;

use arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

/// Result with OmenDB's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an OmenDB call can fail with, by what the caller can do about it.
/// Every error leaves the database as it was before the failing statement
/// (and, inside a transaction, aborts it).
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
    /// An index that does not exist.
    #[error("index {0:?} does not exist")]
    UnknownIndex(String),
    /// `SET` or `SHOW` of a setting OmenDB does not know.
    #[error("unrecognized configuration parameter {0:?}")]
    UnknownSetting(String),
    /// A table or index of that name exists already (PostgreSQL calls
    /// both relations, and so shares their names).
    #[error("relation {0:?} already exists")]
    DuplicateRelation(String),
    /// A column of that name exists already in the table.
    #[error("column {column:?} of relation {table:?} already exists")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
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
    /// Division (or a remainder) by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// A number outside its type's range: integer overflow, or a value
    /// cast to a type too narrow for it.
    #[error("{0}")]
    NumericOutOfRange(String),
    /// Text that does not parse as the type it is cast to.
    #[error("invalid input: {0}")]
    InvalidText(String),
    /// Wrong number or type of `$n` parameters.
    #[error("parameter error: {0}")]
    Parameter(String),
    /// The statement failed while running, for a reason no other variant
    /// names (an invalid argument to a function, say).
    #[error("execution error: {0}")]
    Execution(String),
    /// The statement needed more memory than the database's budget or the
    /// query's limit allows, after spilling what it could.
    #[error("memory budget exceeded: {0}")]
    ResourcesExhausted(String),
    /// The statement was cancelled, or ran past its `statement_timeout`.
    #[error("{0}")]
    QueryCanceled(String),
    /// A concurrent transaction wrote the same row first. Retryable: run the
    /// transaction again.
    #[error("serialization conflict: {0}")]
    SerializationConflict(String),
    /// A READ COMMITTED statement waited too long for a row another
    /// transaction holds: possibly a deadlock, which OmenDB does not detect
    /// by itself. Retryable, as [`Error::SerializationConflict`].
    #[error("deadlock detected: {0}")]
    Deadlock(String),
    /// A statement waited longer than `lock_timeout` (READ COMMITTED rows)
    /// or than the row store allows (DDL waiting for a table's writers).
    #[error("lock not available: {0}")]
    LockNotAvailable(String),
    /// A SQL construct or option OmenDB does not support (yet); the
    /// message names it.
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
    /// A change feed cannot give what was asked: its table was dropped or
    /// rewritten by ALTER TABLE, or the log no longer holds the changes
    /// after the position it was opened at.
    #[error("change feed: {0}")]
    FeedUnavailable(String),
    /// Another handle (in this or another process) has the database
    /// directory open.
    #[error("database directory {} is locked by {holder}", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says (`pid=...`).
        holder: String,
    },
    /// A file-system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data failed its checksum or does not parse; the message
    /// names the file. Nothing was served from it.
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
    /// `tests/omendb/sqlstate.rs` checks each against PostgreSQL 15's.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Parse(_) => "42601",
            Error::UnknownTable(_) => "42P01",
            Error::UnknownColumn(_) => "42703",
            Error::UnknownIndex(_) | Error::UnknownSetting(_) => "42704",
            Error::DuplicateRelation(_) => "42P07",
            Error::DuplicateColumn { .. } => "42701",
            // PostgreSQL has a code per cause in class 42; DataFusion's
            // planning errors do not say which.
            Error::Plan(_) => "42000",
            Error::UniqueViolation(_) => "23505",
            Error::NotNull(_) => "23502",
            Error::Constraint(_) => "22000",
            Error::DivisionByZero => "22012",
            Error::NumericOutOfRange(_) => "22003",
            Error::InvalidText(_) => "22P02",
            Error::Parameter(_) => "22023",
            Error::Execution(_) => "22000",
            Error::ResourcesExhausted(_) => "53200",
            Error::QueryCanceled(_) => "57014",
            Error::SerializationConflict(_) => "40001",
            Error::Deadlock(_) => "40P01",
            Error::LockNotAvailable(_) => "55P03",
            Error::Unsupported(_) => "0A000",
            Error::TransactionAborted => "25P02",
            Error::NoTransaction(_) => "25P01",
            Error::ActiveTransaction(_) => "25001",
            Error::UnknownSavepoint(_) => "3B001",
            Error::FeedUnavailable(_) => "55000",
            Error::Locked { .. } => "55006",
            Error::Io(_) => "58030",
            Error::Corruption(_) => "XX001",
            Error::Closed => "57P01",
            Error::Internal(_) => "XX000",
        }
    }
}

/// A copy of `e` that keeps its kind and message (an error reached through
/// a shared reference cannot be moved out).
fn io_copy(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

impl From<omen_rowstore::Error> for Error {
    fn from(e: omen_rowstore::Error) -> Self {
        match e {
            omen_rowstore::Error::Io(e) => Error::Io(e),
            e => Error::from(&e),
        }
    }
}

impl From<&omen_rowstore::Error> for Error {
    fn from(e: &omen_rowstore::Error) -> Self {
        use omen_rowstore::Error as E;
        match e {
            E::UnknownTable(t) => Error::UnknownTable(t.clone()),
            E::TableExists(name) | E::IndexExists(name) => Error::DuplicateRelation(name.clone()),
            E::DuplicateKey { .. } | E::UniqueViolation { .. } => Error::UniqueViolation(e.to_string()),
            E::NotNull { .. } => Error::NotNull(e.to_string()),
            E::Schema { .. } => Error::Constraint(e.to_string()),
            E::UnknownColumn { column, .. } => Error::UnknownColumn(column.clone()),
            E::ColumnExists { table, column } => Error::DuplicateColumn { table: table.clone(), column: column.clone() },
            E::UnknownIndex(i) => Error::UnknownIndex(i.clone()),
            E::LockTimeout { .. } => Error::LockNotAvailable(e.to_string()),
            E::SerializationConflict { .. } => Error::SerializationConflict(e.to_string()),
            E::Closed | E::TransactionClosed => Error::Closed,
            E::Io(io) => Error::Io(io_copy(io)),
            E::WalFailed(_) => Error::Io(std::io::Error::other(e.to_string())),
            E::Corruption { .. } | E::Decode(_) => Error::Corruption(e.to_string()),
            E::LogTrimmed { .. } | E::AheadOfStore { .. } | E::NotReplayable { .. } => Error::FeedUnavailable(e.to_string()),
            _ => Error::Internal(e.to_string()),
        }
    }
}

impl From<&omen_colstore::Error> for Error {
    fn from(e: &omen_colstore::Error) -> Self {
        use omen_colstore::Error as E;
        match e {
            E::Corruption { .. } => Error::Corruption(e.to_string()),
            E::Io(io) => Error::Io(io_copy(io)),
            E::Options(_) => Error::Unsupported(e.to_string()),
            _ => Error::Internal(e.to_string()),
        }
    }
}

impl From<omen_sync::Error> for Error {
    fn from(e: omen_sync::Error) -> Self {
        match e {
            omen_sync::Error::Row(e) => e.into(),
            e => Error::from(&e),
        }
    }
}

impl From<&omen_sync::Error> for Error {
    fn from(e: &omen_sync::Error) -> Self {
        use omen_sync::Error as E;
        match e {
            E::Row(e) => e.into(),
            E::Column(e) => e.into(),
            E::Arrow(e) => e.into(),
            E::Conversion(msg) => Error::Constraint(msg.clone()),
            E::FeedEnded(_) => Error::FeedUnavailable(e.to_string()),
            E::Stopped => Error::Closed,
            _ => Error::Internal(e.to_string()),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::from(&e)
    }
}

impl From<&DataFusionError> for Error {
    fn from(e: &DataFusionError) -> Self {
        // An error of OmenDB's own that travelled up through DataFusion (a
        // scan's, wrapped as External, perhaps shared between partitions)
        // comes back as what it was.
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(e) = s.downcast_ref::<omen_sync::Error>() {
                return e.into();
            }
            if let Some(e) = s.downcast_ref::<omen_rowstore::Error>() {
                return e.into();
            }
            if let Some(e) = s.downcast_ref::<omen_colstore::Error>() {
                return e.into();
            }
            source = s.source();
        }
        match e.find_root() {
            DataFusionError::SQL(e, _) => Error::Parse(e.to_string()),
            DataFusionError::SchemaError(s, _) => match s.as_ref() {
                SchemaError::FieldNotFound { field, .. } => Error::UnknownColumn(field.name().to_string()),
                other => Error::Plan(other.to_string()),
            },
            DataFusionError::NotImplemented(m) => Error::Unsupported(m.clone()),
            DataFusionError::Plan(m) => Error::Plan(m.clone()),
            DataFusionError::Execution(m) => Error::Execution(m.clone()),
            DataFusionError::ResourcesExhausted(m) => Error::ResourcesExhausted(m.clone()),
            DataFusionError::ArrowError(e, _) => e.as_ref().into(),
            DataFusionError::IoError(e) => Error::Io(io_copy(e)),
            DataFusionError::External(inner) => Error::Execution(inner.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::from(&e)
    }
}

impl From<&ArrowError> for Error {
    fn from(e: &ArrowError) -> Self {
        match e {
            ArrowError::DivideByZero => Error::DivisionByZero,
            ArrowError::ArithmeticOverflow(m) => Error::NumericOutOfRange(m.clone()),
            // arrow-cast's messages: "Can't cast value 300 to type Int8"
            // and "Cannot cast to Decimal128(5, 2). Overflowing on 1234.5"
            // for values out of range; "Cannot cast string 'x' to value of
            // Int64 type" for text that does not parse.
            ArrowError::CastError(m) if m.starts_with("Can't cast value") || m.contains("Overflowing on") => {
                Error::NumericOutOfRange(m.clone())
            }
            ArrowError::CastError(m) if m.starts_with("Cannot cast string") => Error::InvalidText(m.clone()),
            ArrowError::ParseError(m) => Error::InvalidText(m.clone()),
            ArrowError::IoError(_, io) => Error::Io(io_copy(io)),
            other => Error::Execution(other.to_string()),
        }
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for Error {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        Error::Parse(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant with the code of its PostgreSQL condition (errcodes.txt).
    fn postgres_condition(e: &Error) -> (&'static str, &'static str) {
        match e {
            Error::Parse(_) => ("syntax_error", "42601"),
            Error::UnknownTable(_) => ("undefined_table", "42P01"),
            Error::UnknownColumn(_) => ("undefined_column", "42703"),
            Error::UnknownIndex(_) | Error::UnknownSetting(_) => ("undefined_object", "42704"),
            Error::DuplicateRelation(_) => ("duplicate_table", "42P07"),
            Error::DuplicateColumn { .. } => ("duplicate_column", "42701"),
            Error::Plan(_) => ("syntax_error_or_access_rule_violation", "42000"),
            Error::UniqueViolation(_) => ("unique_violation", "23505"),
            Error::NotNull(_) => ("not_null_violation", "23502"),
            Error::Constraint(_) | Error::Execution(_) => ("data_exception", "22000"),
            Error::DivisionByZero => ("division_by_zero", "22012"),
            Error::NumericOutOfRange(_) => ("numeric_value_out_of_range", "22003"),
            Error::InvalidText(_) => ("invalid_text_representation", "22P02"),
            Error::Parameter(_) => ("invalid_parameter_value", "22023"),
            Error::ResourcesExhausted(_) => ("out_of_memory", "53200"),
            Error::QueryCanceled(_) => ("query_canceled", "57014"),
            Error::SerializationConflict(_) => ("serialization_failure", "40001"),
            Error::Deadlock(_) => ("deadlock_detected", "40P01"),
            Error::LockNotAvailable(_) => ("lock_not_available", "55P03"),
            Error::Unsupported(_) => ("feature_not_supported", "0A000"),
            Error::TransactionAborted => ("in_failed_sql_transaction", "25P02"),
            Error::NoTransaction(_) => ("no_active_sql_transaction", "25P01"),
            Error::ActiveTransaction(_) => ("active_sql_transaction", "25001"),
            Error::UnknownSavepoint(_) => ("invalid_savepoint_specification", "3B001"),
            Error::FeedUnavailable(_) => ("object_not_in_prerequisite_state", "55000"),
            Error::Locked { .. } => ("object_in_use", "55006"),
            Error::Io(_) => ("io_error", "58030"),
            Error::Corruption(_) => ("data_corrupted", "XX001"),
            Error::Closed => ("admin_shutdown", "57P01"),
            Error::Internal(_) => ("internal_error", "XX000"),
        }
    }

    #[test]
    fn every_variant_has_its_postgres_code() {
        let text = || String::from("x");
        let every = [
            Error::Parse(text()),
            Error::UnknownTable(text()),
            Error::UnknownColumn(text()),
            Error::UnknownIndex(text()),
            Error::UnknownSetting(text()),
            Error::DuplicateRelation(text()),
            Error::DuplicateColumn { table: text(), column: text() },
            Error::Plan(text()),
            Error::UniqueViolation(text()),
            Error::NotNull(text()),
            Error::Constraint(text()),
            Error::DivisionByZero,
            Error::NumericOutOfRange(text()),
            Error::InvalidText(text()),
            Error::Parameter(text()),
            Error::Execution(text()),
            Error::ResourcesExhausted(text()),
            Error::QueryCanceled(text()),
            Error::SerializationConflict(text()),
            Error::Deadlock(text()),
            Error::LockNotAvailable(text()),
            Error::Unsupported(text()),
            Error::TransactionAborted,
            Error::NoTransaction("SAVEPOINT"),
            Error::ActiveTransaction("x"),
            Error::UnknownSavepoint(text()),
            Error::FeedUnavailable(text()),
            Error::Locked { dir: "d".into(), holder: text() },
            Error::Io(std::io::Error::other("x")),
            Error::Corruption(text()),
            Error::Closed,
            Error::Internal(text()),
        ];
        for e in &every {
            let (condition, code) = postgres_condition(e);
            assert_eq!(e.sqlstate(), code, "{e:?} is PostgreSQL's {condition}");
        }
    }
}
