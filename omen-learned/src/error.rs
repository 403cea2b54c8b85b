//! omen-learned's error type.

/// Result with omen-learned's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an index could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keys are not sorted ascending.
    #[error("keys are not sorted: key at position {position} is smaller than its predecessor")]
    NotSorted {
        /// Position of the first out-of-order key.
        position: usize,
    },
    /// Epsilon must be at least 1.
    #[error("epsilon must be at least 1")]
    InvalidEpsilon,
    /// A serialized index that is truncated, corrupted or of an unknown
    /// format version.
    #[error("corrupt serialized index: {0}")]
    Corrupt(String),
    /// The verifier found a key outside its predicted window: a bug in the
    /// model, reported instead of serving a wrong window.
    #[error("verification failed: key {key} at position {position} lies outside its window {lo}..{hi}")]
    Verification {
        /// The key.
        key: u64,
        /// Its first position.
        position: usize,
        /// The window's start.
        lo: usize,
        /// The window's end (exclusive).
        hi: usize,
    },
}
