//! Options for opening a database.

pub use omen_colstore::CachePolicy;
pub use omen_rowstore::{Durability, IoBackend};

/// The data-directory layout this build writes. It also opens version-1
/// directories (one log file, no checkpoints), upgrading them.
pub const LAYOUT_VERSION: u32 = 2;

/// How to open a [`crate::Database`]. Start from `Options::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// When a commit reaches stable storage. Default [`Durability::Full`]:
    /// `commit` returns after the log is fdatasync'ed.
    pub durability: Durability,
    /// Bytes that query execution may use (sorts, joins, aggregations);
    /// past it a query spills where it can, or fails with
    /// [`crate::Error::ResourcesExhausted`]. Default: half the machine's memory. 0
    /// means no limit; otherwise at least 16 MiB, and opening with less is
    /// [`crate::Error::Unsupported`] (a spilling sort needs room to merge).
    pub memory_budget: usize,
    /// Bytes one query may hold within the budget, so that one large sort
    /// or join cannot take it all from the others (the server's "memory
    /// per query"); past it the query spills or fails the same way.
    /// Default 0: only the budget binds. Otherwise at least 16 MiB.
    pub query_memory_limit: usize,
    /// The layout version a new data directory is created with. Only
    /// [`LAYOUT_VERSION`] is supported; opening a directory written with
    /// another version is an error, never a silent misread (version-1
    /// directories are the exception: they are read and upgraded).
    pub layout_version: u32,
    /// Whether primary-key point statements and `INSERT ... VALUES` skip
    /// DataFusion when they run (see [`crate::Statement`]). Default true;
    /// turning it off plans every statement through DataFusion, for
    /// comparisons and for ruling the fast path out when chasing a bug.
    pub fast_path: bool,
    /// Log bytes that start a background checkpoint, which writes every
    /// table's rows to run files and removes the log they cover (so
    /// reopening replays little and the log stops growing). A checkpoint
    /// also waits until the log is as big as the last checkpoint's runs,
    /// so it costs at most one write of the data per write of as much log.
    /// Default 64 MiB; 0 turns this trigger off (with no
    /// [`Options::row_memory_budget`] either, no background checkpoints;
    /// [`crate::Database::checkpoint`] and SQL `CHECKPOINT` still work).
    pub checkpoint_wal_bytes: u64,
    /// Bytes of changed rows the row store may hold in memory beyond its
    /// checkpoint runs: a checkpoint also starts once the log since the
    /// last one holds half this much, whatever the data's size, and the
    /// rows it writes are then read from the memory-mapped runs. Each
    /// checkpoint writes every table whole, so a budget much smaller than
    /// the data means frequent full rewrites (and writers are not slowed
    /// if they outrun them). Default 0: no budget.
    pub row_memory_budget: u64,
    /// How the log writes and syncs. Default [`IoBackend::Plain`] (pwrite
    /// and fdatasync), which measured faster here than
    /// [`IoBackend::IoUring`] (a group commit's write and fdatasync in one
    /// submission); [`IoBackend::Auto`] takes io_uring where the kernel
    /// allows it.
    pub io_backend: IoBackend,
    /// Bytes the column store may keep in memory: decoded columns (the hot
    /// tier) plus every segment's keys, timestamps and zone maps. A column
    /// whose segment is in a file (`<dir>/columns`, the warm tier) may
    /// leave memory and is read again when a query needs it; columns not
    /// yet written (the last couple of seconds of commits) always stay.
    /// [`Database::metrics`](crate::Database::metrics) shows where it
    /// goes. Default `None`: every column read stays in memory. At least
    /// 8 MiB, and only for a database with a directory: an in-memory
    /// database keeps every column, and opening one with a budget is
    /// [`crate::Error::Unsupported`].
    pub column_memory_budget: Option<u64>,
    /// What decides which columns stay in memory under
    /// [`Options::column_memory_budget`]. Default: the learned policy
    /// (omen-tier's; see its README for how it compares).
    pub cache_policy: CachePolicy,
    /// A file to record every column access to (omen-tier's trace format),
    /// for `omen-tier`'s policy simulator. Default `None`.
    pub access_trace: Option<std::path::PathBuf>,
    /// After each scan, load in the background the columns the cache
    /// policy predicts the next statements will read (a dashboard query
    /// that repeats, the segments that followed last time), within
    /// [`Options::column_memory_budget`]. Default false: measured so far
    /// only in omen-tier's simulator (see its README), not in the database.
    pub predictive_warming: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            memory_budget: physical_memory() / 2,
            query_memory_limit: 0,
            layout_version: LAYOUT_VERSION,
            fast_path: true,
            checkpoint_wal_bytes: 64 << 20,
            row_memory_budget: 0,
            io_backend: IoBackend::Plain,
            column_memory_budget: None,
            cache_policy: CachePolicy::default(),
            access_trace: None,
            predictive_warming: false,
        }
    }
}

impl Options {
    /// Sets [`Options::durability`].
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`Options::fast_path`].
    pub fn with_fast_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }

    /// Sets [`Options::query_memory_limit`] in bytes.
    pub fn with_query_memory_limit(mut self, bytes: usize) -> Self {
        self.query_memory_limit = bytes;
        self
    }

    /// Sets [`Options::io_backend`].
    pub fn with_io_backend(mut self, io_backend: IoBackend) -> Self {
        self.io_backend = io_backend;
        self
    }

    /// Sets [`Options::row_memory_budget`].
    pub fn with_row_memory_budget(mut self, bytes: u64) -> Self {
        self.row_memory_budget = bytes;
        self
    }

    /// Sets [`Options::checkpoint_wal_bytes`].
    pub fn with_checkpoint_wal_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_wal_bytes = bytes;
        self
    }

    /// Sets [`Options::column_memory_budget`] in bytes.
    pub fn with_column_memory_budget(mut self, bytes: u64) -> Self {
        self.column_memory_budget = Some(bytes);
        self
    }

    /// Sets [`Options::cache_policy`].
    pub fn with_cache_policy(mut self, policy: CachePolicy) -> Self {
        self.cache_policy = policy;
        self
    }

    /// Sets [`Options::predictive_warming`].
    pub fn with_predictive_warming(mut self, on: bool) -> Self {
        self.predictive_warming = on;
        self
    }

    /// Sets [`Options::access_trace`].
    pub fn with_access_trace(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.access_trace = Some(path.into());
        self
    }

    /// Sets [`Options::memory_budget`] in bytes.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }
}

/// Total memory from /proc/meminfo; 4 GiB where it cannot be read.
fn physical_memory() -> usize {
    const FALLBACK: usize = 4 << 30;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok()))
        .map_or(FALLBACK, |kib| kib.saturating_mul(1024))
}
