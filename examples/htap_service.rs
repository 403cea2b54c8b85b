//! The embedded HTAP service: one process that runs an order-processing
//! workload, analytics on the same live tables, and a PostgreSQL wire
//! protocol server so psql and drivers can look in meanwhile.
//!
//! ```text
//! cargo run --release --example htap_service
//! psql -h 127.0.0.1 -p 5433            # in another terminal
//! ```
//!
//! Flags: `--data-dir DIR` (default `./omendb-data`), `--in-memory`,
//! `--listen ADDR` (default `127.0.0.1:5433`), `--no-workload`,
//! `--writers N` (default 2), `--seconds N` (stop after N seconds; default:
//! run until Ctrl-C), `--wal-io plain|uring|auto` (the log's I/O backend;
//! default plain), `--column-budget MIB` (memory for the column store's
//! decoded columns and segment metadata; default: no limit).
//! `--access-trace FILE` records every column access for omen-tier's
//! simulator.
//! Ctrl-C (or SIGTERM) stops the workload, closes the
//! server's connections and the database; the next start continues from
//! the data on disk.
//!
//! Every second it prints one status line: transactions per second,
//! the latency of each analytic query, how many commits the column store
//! had yet to apply, a freshness check (the order the analytics loop
//! committed just before its query is counted in that query's result),
//! and the column store's memory: decoded columns in memory and the share
//! of column reads served from memory since the last line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use omendb::arrow::array::AsArray;
use omendb::arrow::datatypes::{Decimal128Type, Int64Type};
use omendb::server::ServerOptions;
use omendb::{Database, Error, Options, Value, params};

const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
const CUSTOMERS: i64 = 10_000;
const PRODUCTS: i64 = 500;

struct Args {
    data_dir: String,
    in_memory: bool,
    listen: String,
    workload: bool,
    writers: usize,
    seconds: Option<u64>,
    io: omendb::IoBackend,
    column_budget_mib: Option<u64>,
    access_trace: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        data_dir: "./omendb-data".into(),
        in_memory: false,
        listen: "127.0.0.1:5433".into(),
        workload: true,
        writers: 2,
        seconds: None,
        io: omendb::IoBackend::Plain,
        column_budget_mib: None,
        access_trace: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data-dir" => a.data_dir = value()?,
            "--in-memory" => a.in_memory = true,
            "--listen" => a.listen = value()?,
            "--no-workload" => a.workload = false,
            "--writers" => a.writers = value()?.parse().map_err(|e| format!("--writers: {e}"))?,
            "--column-budget" => a.column_budget_mib = Some(value()?.parse().map_err(|e| format!("--column-budget: {e}"))?),
            "--access-trace" => a.access_trace = Some(value()?),
            "--seconds" => a.seconds = Some(value()?.parse().map_err(|e| format!("--seconds: {e}"))?),
            "--wal-io" => {
                a.io = match value()?.as_str() {
                    "auto" => omendb::IoBackend::Auto,
                    "uring" => omendb::IoBackend::IoUring,
                    "plain" => omendb::IoBackend::Plain,
                    other => return Err(format!("--wal-io: {other}: expected auto, uring or plain")),
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: htap_service [--data-dir DIR | --in-memory] [--listen ADDR] [--no-workload] [--writers N] [--seconds N] [--wal-io auto|uring|plain] [--column-budget MIB] [--access-trace FILE]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other} (see --help)")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let mut options = Options::default().with_io_backend(args.io);
    if let Some(mib) = args.column_budget_mib {
        options = options.with_column_memory_budget(mib << 20);
    }
    if let Some(path) = &args.access_trace {
        options = options.with_access_trace(path);
    }
    let db = match args.in_memory {
        true if args.column_budget_mib.is_some() => return Err("--column-budget needs a data directory (not --in-memory)".into()),
        true => Database::open_in_memory()?,
        false => Database::open_with(&args.data_dir, options)?,
    };
    let server = db.serve(ServerOptions { listen: args.listen.parse()?, ..ServerOptions::default() })?;
    let addr = server.local_addr();
    let storage = match db.io_backend() {
        Some(io) => format!("data in {} (log I/O: {io})", args.data_dir),
        None => "in memory".to_owned(),
    };
    println!("OmenDB HTAP service: {storage}");
    println!("connect with: psql -h {} -p {} (tables: customers, products, orders, order_lines)", addr.ip(), addr.port());

    let stop = Arc::new(AtomicBool::new(false));
    on_signal(Arc::clone(&stop));
    if args.workload {
        run_workload(&db, &args, &stop)?;
    } else {
        println!("no workload: serving until Ctrl-C");
        while !stop.load(Ordering::Relaxed) && !deadline_passed(&args, Instant::now()) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    println!("shutting down: closing connections and the database");
    server.shutdown();
    db.close()?;
    println!("stopped cleanly");
    Ok(())
}

fn deadline_passed(args: &Args, started: Instant) -> bool {
    args.seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
}

/// Sets `stop` on Ctrl-C or SIGTERM.
fn on_signal(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else { return };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
}

fn setup(db: &Database) -> Result<(), Error> {
    db.execute(
        "CREATE TABLE IF NOT EXISTS customers (id BIGINT PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL, \
         balance NUMERIC(14,2) NOT NULL DEFAULT 0)",
        params![],
    )?;
    db.execute("CREATE TABLE IF NOT EXISTS products (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2) NOT NULL)", params![])?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, placed_at TIMESTAMPTZ NOT NULL, \
         total NUMERIC(14,2) NOT NULL, status TEXT NOT NULL)",
        params![],
    )?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS order_lines (order_id BIGINT, line INT, product_id BIGINT NOT NULL, qty INT NOT NULL, \
         amount NUMERIC(14,2) NOT NULL, PRIMARY KEY (order_id, line))",
        params![],
    )?;
    if count(db, "SELECT count(*) FROM customers")? == 0 {
        let mut txn = db.begin()?;
        for id in 1..=CUSTOMERS {
            let region = REGIONS[(id % REGIONS.len() as i64) as usize];
            txn.execute("INSERT INTO customers (id, name, region) VALUES ($1, $2, $3)", params![id, format!("customer {id}"), region])?;
        }
        for id in 1..=PRODUCTS {
            // Prices 1.00 .. 99.99, stored exactly as NUMERIC.
            txn.execute(
                "INSERT INTO products VALUES ($1, $2, $3::NUMERIC(10,2) / 100)",
                params![id, format!("product {id}"), price_cents(id)],
            )?;
        }
        txn.commit()?;
    }
    Ok(())
}

fn price_cents(product: i64) -> i64 {
    100 + (product * 7919) % 9900
}

fn count(db: &Database, sql: &str) -> Result<i64, Error> {
    let batches = db.query(sql, params![])?;
    Ok(batches.first().map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0)))
}

/// A small deterministic generator (no dependency for an example).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as i64
    }
}

/// Commits one new order (1..4 lines) with id `id`; retries on conflicts.
fn new_order(db: &Database, rng: &mut Rng, id: i64, retries: &AtomicU64) -> Result<(), Error> {
    let customer = 1 + rng.below(CUSTOMERS);
    let lines: Vec<(i64, i64)> = (0..1 + rng.below(4)).map(|_| (1 + rng.below(PRODUCTS), 1 + rng.below(5))).collect();
    let total: i64 = lines.iter().map(|(p, q)| price_cents(*p) * q).sum();
    retry(retries, || {
        let mut txn = db.begin()?;
        for (line, (product, qty)) in lines.iter().enumerate() {
            txn.execute(
                "INSERT INTO order_lines VALUES ($1, $2, $3, $4, $5::NUMERIC(14,2) / 100)",
                params![id, line as i32, *product, *qty as i32, price_cents(*product) * qty],
            )?;
        }
        txn.execute("INSERT INTO orders VALUES ($1, $2, now(), $3::NUMERIC(14,2) / 100, 'new')", params![id, customer, total])?;
        txn.commit()
    })
}

/// Pays a recent order: marks it paid and credits its customer.
fn payment(db: &Database, rng: &mut Rng, newest: i64, retries: &AtomicU64) -> Result<(), Error> {
    let id = (newest - rng.below(1000)).max(1);
    retry(retries, || {
        let mut txn = db.begin()?;
        let found = txn.query("SELECT customer_id, total FROM orders WHERE id = $1 AND status = 'new'", params![id])?;
        let Some(row) = found.first().filter(|b| b.num_rows() > 0) else {
            txn.rollback();
            return Ok(());
        };
        let customer = row.column(0).as_primitive::<Int64Type>().value(0);
        let total = Value::Decimal { unscaled: row.column(1).as_primitive::<Decimal128Type>().value(0), scale: 2 };
        txn.execute("UPDATE orders SET status = 'paid' WHERE id = $1", params![id])?;
        txn.execute("UPDATE customers SET balance = balance + $1 WHERE id = $2", params![total, customer])?;
        txn.commit()
    })
}

fn retry(retries: &AtomicU64, mut f: impl FnMut() -> Result<(), Error>) -> Result<(), Error> {
    loop {
        match f() {
            Err(e) if e.is_retryable() => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            other => return other,
        }
    }
}

fn run_workload(db: &Database, args: &Args, stop: &Arc<AtomicBool>) -> Result<(), Box<dyn std::error::Error>> {
    setup(db)?;
    let next_id = Arc::new(AtomicI64::new(count(db, "SELECT coalesce(max(id), 0) FROM orders")? + 1));
    let commits = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    println!("workload: {} writer threads (new order + payment), analytics every second; Ctrl-C to stop", args.writers);
    let writers: Vec<_> = (0..args.writers)
        .map(|w| {
            let (db, stop, next_id, commits, retries) =
                (db.clone(), Arc::clone(stop), Arc::clone(&next_id), Arc::clone(&commits), Arc::clone(&retries));
            std::thread::spawn(move || -> Result<(), Error> {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
                while !stop.load(Ordering::Relaxed) {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    new_order(&db, &mut rng, id, &retries)?;
                    payment(&db, &mut rng, id, &retries)?;
                    commits.fetch_add(2, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();

    let started = Instant::now();
    let mut rng = Rng(42);
    let (mut last_commits, mut last_tick, mut last_sync) = (0, Instant::now(), db.sync_metrics());
    let mut last_columns = db.metrics().columns;
    while !stop.load(Ordering::Relaxed) && !deadline_passed(args, started) {
        std::thread::sleep(Duration::from_secs(1).saturating_sub(last_tick.elapsed()));
        // The freshness probe: an order committed just before the queries.
        let marker = next_id.fetch_add(1, Ordering::Relaxed);
        new_order(db, &mut rng, marker, &retries)?;
        let backlog = db.sync_backlog();

        let t = Instant::now();
        let by_region = db.query(
            "SELECT c.region, count(*) AS orders, sum(o.total) AS revenue FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.placed_at > now() - INTERVAL '1 minute' GROUP BY c.region ORDER BY revenue DESC",
            params![],
        )?;
        let revenue_ms = t.elapsed();
        let t = Instant::now();
        db.query(
            "SELECT p.name, sum(l.qty) AS units FROM order_lines l JOIN products p ON p.id = l.product_id \
             GROUP BY p.name ORDER BY units DESC LIMIT 3",
            params![],
        )?;
        let top_ms = t.elapsed();
        let t = Instant::now();
        let totals = db.query("SELECT count(*), count(*) FILTER (WHERE id = $1) FROM orders", params![marker])?;
        let totals_ms = t.elapsed();
        let orders = totals[0].column(0).as_primitive::<Int64Type>().value(0);
        let fresh = totals[0].column(1).as_primitive::<Int64Type>().value(0) == 1;
        let regions = by_region.iter().map(|b| b.num_rows()).sum::<usize>();

        let now_commits = commits.load(Ordering::Relaxed);
        let tps = (now_commits - last_commits) as f64 / last_tick.elapsed().as_secs_f64();
        // Commit -> column store lag over this second's commits.
        let sync = db.sync_metrics();
        let lag = sync.lag.since(&last_sync.lag);
        let p99 = lag.quantile(0.99).map_or_else(|| "-".to_owned(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3));
        let columns = db.metrics().columns;
        let reads = (columns.hits + columns.misses).saturating_sub(last_columns.hits + last_columns.misses);
        let from_memory = match reads {
            0 => "-".to_owned(),
            n => format!("{:.0}%", 100.0 * (columns.hits - last_columns.hits) as f64 / n as f64),
        };
        let hot_mib = (columns.hot_bytes + columns.unpersisted_bytes) as f64 / (1 << 20) as f64;
        (last_commits, last_tick, last_sync, last_columns) = (now_commits, Instant::now(), sync, columns);
        println!(
            "[{:>4}s] {:>6.0} txn/s ({} retries) | analytics: revenue/region/min {:>4} ms ({regions} regions), top products {:>4} ms, \
             totals {:>4} ms | sync lag p99 {p99} (backlog {backlog}) | fresh: {} | orders {orders} | columns hot {hot_mib:.0} MiB, \
             {from_memory} from memory",
            started.elapsed().as_secs(),
            tps,
            retries.load(Ordering::Relaxed),
            revenue_ms.as_millis(),
            top_ms.as_millis(),
            totals_ms.as_millis(),
            if fresh { "yes" } else { "NO" },
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().map_err(|_| "a writer thread panicked")??;
    }
    Ok(())
}
