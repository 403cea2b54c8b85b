//! omen-sync's error type.

/// Result with omen-sync's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while syncing or reading a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the row store.
    #[error(transparent)]
    Row(#[from] omen_rowstore::Error),
    /// From the column store.
    #[error(transparent)]
    Column(#[from] omen_colstore::Error),
    /// An Arrow kernel failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// An Arrow value that does not convert to the column's SQL type.
    #[error("{0}")]
    Conversion(String),
    /// The sync worker stopped on an error; analytic reads cannot be served
    /// exactly until the database is reopened.
    #[error("column-store sync failed: {0}")]
    SyncFailed(String),
    /// A change feed has no more to give: its table was dropped or
    /// rewritten, or, in an in-memory store, it fell behind the live stream
    /// (see [`crate::ChangeFeed::next_batch`]).
    #[error("change feed ended: {0}")]
    FeedEnded(String),
    /// The worker has been stopped (the database is closing).
    #[error("column-store sync has stopped")]
    Stopped,
}
