//! The PostgreSQL wire protocol (feature `server`, on by default): serve a
//! [`Database`] so that psql, drivers (tokio-postgres, psycopg, JDBC, ...)
//! and tools such as pgbench connect to it unchanged.
//!
//! [`Database::serve`] binds a TCP listener and serves connections on the
//! database's own runtime until [`ServerHandle::shutdown`] (or until the
//! handle is dropped). Each connection is a session: autocommit, or inside
//! `BEGIN` ... `COMMIT` with PostgreSQL's rule that an error aborts the
//! transaction (status `E` in ReadyForQuery, SQLSTATE 25P02 until ROLLBACK).
//!
//! ```no_run
//! use omendb::Database;
//! use omendb::server::ServerOptions;
//!
//! let db = Database::open("./omendb-data")?;
//! let server = db.serve(ServerOptions::default())?;
//! println!("psql -h 127.0.0.1 -p {}", server.local_addr().port());
//! // ... the application goes on; connections are served in the background.
//! server.shutdown();
//! # Ok::<(), omendb::Error>(())
//! ```
//!
//! ## What it speaks
//!
//! - Protocol 3.0 startup with ParameterStatus for what clients check
//!   (`server_version` 15.0, `client_encoding` UTF8, `DateStyle` ISO, ...);
//!   SSL requests are answered `N` (no TLS).
//! - Authentication: [`Auth::Trust`], accepted from loopback clients only
//!   unless [`ServerOptions::allow_remote_trust`], or [`Auth::Password`]
//!   (SCRAM-SHA-256).
//! - The simple query protocol, several statements per query included (each
//!   runs as it would alone: OmenDB does not wrap them in one implicit
//!   transaction as PostgreSQL does); the extended protocol with named and
//!   unnamed statements and portals, parameters and results in text or
//!   binary format, Describe of statements (parameter types as planned)
//!   and portals.
//! - Errors carry PostgreSQL's SQLSTATE (see `omen_sql::Error::sqlstate`).
//! - Cancel requests (the running statement stops; inside a transaction,
//!   the transaction is aborted) and a statement timeout
//!   ([`ServerOptions::statement_timeout`], or `SET statement_timeout`).
//! - Limits: [`ServerOptions::max_connections`] (a client past it gets
//!   SQLSTATE 53300); memory per query is the database's
//!   [`Options::query_memory_limit`](crate::Options::query_memory_limit)
//!   within its memory budget; a client that sends garbage or disconnects
//!   mid-message loses only its own connection.
//! - COPY FROM STDIN (text and CSV); `pg_catalog` and `information_schema`
//!   for psql's `\d` family and drivers' introspection (omen-sql).
//!
//! Not yet: TLS, COPY TO.

mod handler;
mod startup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgwire::api::{ConnectionManager, RandomPidSecretKeyGenerator};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::database::Database;
use crate::{Error, Result};

/// How clients prove who they are.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Any user name, no password. Accepted only from loopback addresses
    /// unless [`ServerOptions::allow_remote_trust`] is set.
    #[default]
    Trust,
    /// One user with a password, checked by SCRAM-SHA-256 (the password
    /// never crosses the wire).
    Password {
        /// The user name clients must give.
        user: String,
        /// Its password.
        password: String,
    },
}

/// How to serve a database; `Default` listens on 127.0.0.1:5433 with
/// [`Auth::Trust`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen. Port 0 picks a free port ([`ServerHandle::local_addr`]
    /// tells which).
    pub listen: SocketAddr,
    /// How clients authenticate.
    pub auth: Auth,
    /// Let [`Auth::Trust`] accept clients from other hosts (off: they are
    /// refused with SQLSTATE 28000).
    pub allow_remote_trust: bool,
    /// Connections served at once; one more is refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// A statement running longer is cancelled (SQLSTATE 57014). `None`: no
    /// limit, unless the session sets `statement_timeout`.
    pub statement_timeout: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5433)),
            auth: Auth::Trust,
            allow_remote_trust: false,
            max_connections: 100,
            statement_timeout: None,
        }
    }
}

/// What every connection of one server shares.
struct Shared {
    db: Database,
    options: ServerOptions,
    /// Finds a connection by the key a cancel request carries.
    cancels: Arc<ConnectionManager>,
    /// Gives each connection its process id and cancel key.
    pids: Arc<RandomPidSecretKeyGenerator>,
}

/// A running server. Dropping it shuts the server down, as
/// [`ServerHandle::shutdown`] does.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Stops accepting connections, closes the open ones (a statement that
    /// is running is cancelled; an open transaction rolls back, as when a
    /// client disconnects) and waits until they are gone. Committed
    /// transactions are unaffected.
    pub fn shutdown(mut self) {
        self.stop_and_wait();
    }

    fn stop_and_wait(&mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            // The accept loop answers when its connections are closed; an
            // error means the runtime is gone (the database closed), and
            // the connections with it.
            let _ = done.recv_timeout(Duration::from_secs(10));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_and_wait();
    }
}

impl Database {
    /// Serves this database over the PostgreSQL wire protocol, in the
    /// background, on the database's runtime. See [`crate::server`].
    ///
    /// Fails if the address cannot be bound, or if [`Auth::Trust`] is asked
    /// to accept remote clients on a non-loopback address without
    /// [`ServerOptions::allow_remote_trust`].
    pub fn serve(&self, options: ServerOptions) -> Result<ServerHandle> {
        self.check_open()?;
        if options.max_connections == 0 {
            return Err(Error::Unsupported("a server with max_connections = 0".into()));
        }
        let listener = {
            let _guard = self.runtime().enter();
            let std = std::net::TcpListener::bind(options.listen)?;
            std.set_nonblocking(true)?;
            TcpListener::from_std(std)?
        };
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let connections = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared { db: self.clone(), options, cancels: Arc::new(ConnectionManager::new()), pids: Arc::default() });
        let count = Arc::clone(&connections);
        self.runtime().spawn(async move {
            accept(listener, shared, stopped, count).await;
            let _ = done_tx.send(());
        });
        Ok(ServerHandle { addr, stop, connections, done: Some(done) })
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>, count: Arc<AtomicUsize>) {
    let slots = Arc::new(Semaphore::new(shared.options.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let (socket, _) = tokio::select! {
            _ = async { stopped.wait_for(|s| *s).await.map(|_| ()) } => break,
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait, then go on.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tasks.spawn(startup::refuse(socket, "53300", "sorry, too many clients already"));
            continue;
        };
        let shared = Arc::clone(&shared);
        let count = Arc::clone(&count);
        count.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let handlers = handler::Connection::new(Arc::clone(&shared));
            // A broken or hostile client ends its own connection only.
            let _ = pgwire::tokio::process_socket(socket, None, handlers).await;
            // The slot first: whoever sees the count drop may connect.
            drop(slot);
            count.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Dropping a connection's task drops its session: a running statement
    // is cancelled, an open transaction rolls back.
    tasks.shutdown().await;
    count.store(0, Ordering::Relaxed);
}
