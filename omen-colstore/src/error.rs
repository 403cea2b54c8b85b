//! The column store's error type.

/// Result with the column store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the column store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No table with that id.
    #[error("column store has no table #{0}")]
    UnknownTable(u64),
    /// `create_table` with an id in use.
    #[error("column store already has table #{0}")]
    TableExists(u64),
    /// A batch that does not match the table (columns, types, row counts).
    #[error("batch does not match the table: {0}")]
    Schema(String),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing a Parquet file failed.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An I/O error from the file system.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Options that cannot work together or are out of range.
    #[error("invalid column store options: {0}")]
    Options(String),
    /// A file's content failed its checksum or does not parse.
    #[error("corrupt file {}: {reason}", file.display())]
    Corruption {
        /// The file.
        file: std::path::PathBuf,
        /// What was wrong.
        reason: String,
    },
}
