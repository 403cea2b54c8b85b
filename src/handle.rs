//! [`Handle`]: what a [`Database`](crate::Database) and every
//! [`Connection`](crate::Connection), [`Transaction`](crate::Transaction)
//! and [`Statement`](crate::Statement) made from it share: the engine, the
//! runtime statements run on, the directory lock, and whether the database
//! is closed. The types above hold a `Handle`, not a `Database`, so none of
//! them depends on another's file.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use omen_sql::{Engine, EngineOptions, Output as SqlOutput, PreparedStatement, Session};
use parking_lot::Mutex;
use tokio::runtime::Runtime;

use crate::dir::DirLock;
use crate::output::Output;
use crate::value::Value;
use crate::{Error, Result};

struct Inner {
    engine: Arc<Engine>,
    /// Runs every statement; taken (and shut down) on close.
    runtime: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    closed: AtomicBool,
    lock: Mutex<Option<DirLock>>,
}

impl Inner {
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.engine.close();
        if let Some(rt) = self.runtime.lock().take() {
            // Never blocks, so close and drop work inside async code too.
            rt.shutdown_background();
        }
        self.lock.lock().take();
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A shared reference to an open database's [`Inner`]; cheap to clone.
#[derive(Clone)]
pub(crate) struct Handle {
    inner: Arc<Inner>,
}

impl Handle {
    /// Opens the engine and starts the runtime its statements run on.
    pub(crate) fn start(options: EngineOptions, lock: Option<DirLock>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name("omendb-worker")
            .enable_all()
            .build()?;
        let engine = Engine::open(options)?;
        let handle = runtime.handle().clone();
        let inner = Inner { engine, runtime: Mutex::new(Some(runtime)), handle, closed: AtomicBool::new(false), lock: Mutex::new(lock) };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Closes the database (see [`crate::Database::close`]); idempotent.
    pub(crate) fn close(&self) -> Result<()> {
        self.inner.close()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Whether the database lives in memory only (it holds no directory).
    pub(crate) fn in_memory(&self) -> bool {
        self.inner.lock.lock().is_none()
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The runtime statements run on (the server's connections run there too).
    #[cfg(feature = "server")]
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    /// Runs a prepared statement in autocommit: on the calling thread if it
    /// takes the fast path, else on the runtime.
    pub(crate) fn autocommit(&self, prepared: &Arc<PreparedStatement>, params: Vec<Value>) -> Result<Output> {
        self.check_open()?;
        if let Some(out) = self.inner.engine.session().execute_fast(prepared, &params) {
            return Output::collect_ready(out?);
        }
        let (engine, prepared) = (Arc::clone(&self.inner.engine), Arc::clone(prepared));
        self.block_on(async move {
            let mut session = engine.session();
            let out = session.execute_prepared(&prepared, &params).await;
            Output::collect(refuse_open_transaction(&mut session, out)?).await
        })
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    /// Runs `fut` on the database's runtime and blocks the calling thread
    /// until it finishes. Safe inside another runtime: the caller waits on
    /// a plain channel and never nests a `block_on`.
    pub(crate) fn block_on<T: Send + 'static>(&self, fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        self.check_open()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        // No answer: the runtime shut down (closed), or the task panicked.
        rx.recv().map_err(|_| match self.check_open() {
            Ok(()) => Error::Internal("the statement's task panicked (a bug in OmenDB: please report it)".into()),
            Err(e) => e,
        })?
    }

    /// Runs `fut` on the database's runtime, for the async methods.
    pub(crate) async fn spawn<T: Send + 'static>(&self, fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        self.check_open()?;
        match self.inner.handle.spawn(fut).await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Err(Error::Closed),
            Err(e) => Err(Error::Internal(format!("statement task failed: {e}"))),
        }
    }
}

/// Runs one statement in a fresh session; a transaction-control statement
/// that would leave the session inside a transaction is refused.
pub(crate) async fn autocommit(engine: &Arc<Engine>, sql: &str, params: &[Value]) -> Result<SqlOutput> {
    let mut session: Session = engine.session();
    let out = session.execute(sql, params).await;
    refuse_open_transaction(&mut session, out)
}

fn refuse_open_transaction(session: &mut Session, out: omen_sql::Result<SqlOutput>) -> Result<SqlOutput> {
    let out = out?;
    if session.in_transaction() {
        session.rollback();
        return Err(Error::Unsupported("BEGIN through Database::execute: use Database::begin() or Database::connect()".into()));
    }
    Ok(out)
}
