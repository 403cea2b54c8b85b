//! The context every statement runs in: the stores, the sync worker,
//! DataFusion's shared state and the counters statements update.
//!
//! It sits below everything that plans or runs a statement, which take a
//! `&Context`; [`crate::Engine`] builds it (`engine/open.rs`) and adds
//! what only the entry point needs (the plan cache).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::catalog::SchemaProvider;
use datafusion::execution::session_state::SessionState;
use omen_rowstore::Store;
use omen_sync::Syncer;

/// The shared state of one open database.
pub(crate) struct Context {
    pub(crate) rows: Store,
    pub(crate) sync: Syncer,
    /// Functions, configuration and memory pool shared by every statement;
    /// each statement adds its own catalog of snapshot tables.
    pub(crate) state: SessionState,
    /// [`crate::EngineOptions::fast_path`].
    pub(crate) fast_path: bool,
    /// [`crate::EngineOptions::query_memory_limit`].
    pub(crate) query_memory_limit: usize,
    /// PostgreSQL's system catalogs over this database's tables.
    pub(crate) pg_catalog: Arc<dyn SchemaProvider>,
    /// How table scans were served.
    pub(crate) access: AccessCounters,
    /// Wakes READ COMMITTED statements waiting for held rows.
    pub(crate) released: Arc<Released>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("rows", &self.rows).finish_non_exhaustive()
    }
}

/// How many table scans each access path served (see
/// [`crate::Engine::access_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessStats {
    /// Scans served by primary-key ranges.
    pub primary_key: u64,
    /// Scans served by secondary-index ranges.
    pub index: u64,
    /// Scans of the whole table (including paths abandoned past
    /// 10,000 rows).
    pub full: u64,
}

/// The live counts behind [`AccessStats`], bumped by `plan/access.rs`.
#[derive(Debug, Default)]
pub(crate) struct AccessCounters {
    pub(crate) primary_key: AtomicU64,
    pub(crate) index: AtomicU64,
    pub(crate) full: AtomicU64,
}

impl AccessCounters {
    pub(crate) fn snapshot(&self) -> AccessStats {
        AccessStats {
            primary_key: self.primary_key.load(Ordering::Relaxed),
            index: self.index.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
        }
    }
}

/// Row releases in the row store ([`omen_rowstore::Store::on_rows_released`]),
/// counted so a waiter cannot miss one that lands between its failed
/// attempt and its wait.
#[derive(Default)]
pub(crate) struct Released {
    pub(crate) count: AtomicU64,
    pub(crate) notify: tokio::sync::Notify,
}

impl Released {
    pub(crate) fn signal(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}
