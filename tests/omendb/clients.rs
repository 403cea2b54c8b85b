//! psql, psycopg 3, psycopg2, asyncpg, SQLAlchemy and pgJDBC, the real clients, against a server on an ephemeral
//! loopback port. `scripts/client-tools.sh` installs them if missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use omendb::Database;
use omendb::server::{ServerHandle, ServerOptions};

/// Where the client tools are, installed once per test run.
struct Tools {
    psql: PathBuf,
    python: PathBuf,
    jdbc: PathBuf,
}

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let out = Command::new("bash").arg(root().join("scripts/client-tools.sh")).output().expect("run scripts/client-tools.sh");
        assert!(out.status.success(), "scripts/client-tools.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines().map(PathBuf::from);
        let mut next = |what: &str| lines.next().unwrap_or_else(|| panic!("no {what} path from scripts/client-tools.sh"));
        Tools { psql: next("psql"), python: next("python"), jdbc: next("pgJDBC") }
    })
}

fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}

fn serve() -> (Database, ServerHandle) {
    let db = Database::open_in_memory().unwrap();
    let server = db.serve(ServerOptions { listen: "127.0.0.1:0".parse().unwrap(), ..ServerOptions::default() }).unwrap();
    (db, server)
}

/// Runs `script` through psql (stopping at the first error); its output.
fn psql(server: &ServerHandle, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sql");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(&tools().psql)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "app", "-d", "omendb", "-p"])
        .arg(server.local_addr().port().to_string())
        .arg("-f")
        .arg(&file)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "psql failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn psql_runs_ddl_dml_copy_and_describes_tables() {
    let (_db, server) = serve();
    let out = psql(
        &server,
        "CREATE TABLE orders (id INT PRIMARY KEY, customer TEXT NOT NULL, total NUMERIC(12,2), placed TIMESTAMP);\n\
         INSERT INTO orders VALUES (1, 'ada', 10.50, '2024-01-02 03:04:05'), (2, 'alan', 20, NULL);\n\
         COPY orders (id, customer, total) FROM STDIN;\n\
         3\tgrace\t30.25\n\
         4\tedsger\t\\N\n\
         \\.\n\
         SELECT count(*) AS n, sum(total) AS s FROM orders;\n\
         BEGIN;\n\
         UPDATE orders SET total = 0 WHERE id = 1;\n\
         ROLLBACK;\n\
         SELECT total FROM orders WHERE id = 1;\n\
         CREATE UNIQUE INDEX orders_customer ON orders (customer, placed);\n\
         \\dt\n\
         \\d orders\n\
         \\di\n\
         \\dt+\n",
    );
    assert!(out.contains("COPY 2"), "{out}");
    assert!(out.contains(" 4 | 60.75"), "{out}");
    assert!(out.contains(" 10.50"), "the rollback undid the update:\n{out}");
    // \dt: the table, in schema public.
    assert!(out.lines().any(|l| l.contains("public") && l.contains("orders") && l.contains("table")), "{out}");
    // \d orders: each column with its type and nullability.
    assert!(out.contains("Table \"public.orders\""), "{out}");
    for column in ["id", "customer", "total", "placed"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(column)), "no column {column} in:\n{out}");
    }
    assert!(out.lines().any(|l| l.contains("customer") && l.contains("text") && l.contains("not null")), "{out}");
    assert!(out.lines().any(|l| l.contains("total") && l.contains("numeric") && !l.contains("not null")), "{out}");
    // \d's footer and \di: the primary key and the index, as PostgreSQL prints them.
    assert!(out.contains("Indexes:"), "{out}");
    assert!(out.contains("\"orders_pkey\" PRIMARY KEY, btree (id)"), "{out}");
    assert!(out.contains("\"orders_customer\" UNIQUE, btree (customer, placed)"), "{out}");
    assert!(out.lines().any(|l| l.contains("orders_customer") && l.contains("index") && l.contains("orders")), "{out}");
    // \dt+: sizes are not tracked, so blank rather than made up.
    assert!(out.lines().any(|l| l.contains("orders") && l.contains("permanent")), "{out}");
}

#[test]
fn psycopg_connects_queries_copies_and_conflicts() {
    python(&root().join("tests/clients/psycopg_client.py"));
}

/// psycopg2 and SQLAlchemy in their default mode (DDL inside BEGIN),
/// asyncpg's named statements, SQLAlchemy's reflection queries.
#[test]
fn psycopg2_asyncpg_and_sqlalchemy_work_unchanged() {
    python(&root().join("tests/clients/python_drivers.py"));
}

/// pgJDBC: server-prepared binary statements past its threshold, every
/// type, a rollback, SQLSTATEs, and DatabaseMetaData's tables, columns,
/// primary keys and indexes.
#[test]
fn pgjdbc_runs_statements_and_reads_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let jar = &tools().jdbc;
    let javac = Command::new("javac")
        .arg("-d")
        .arg(dir.path())
        .arg("-cp")
        .arg(jar)
        .arg(root().join("tests/clients/JdbcClient.java"))
        .output()
        .unwrap();
    assert!(javac.status.success(), "javac failed:\n{}", String::from_utf8_lossy(&javac.stderr));
    let classpath = format!("{}:{}", jar.display(), dir.path().display());
    client(Command::new("java").args(["-cp", &classpath, "JdbcClient"]));
}

/// Runs a client script against a fresh server; it prints OK.
fn python(script: &std::path::Path) {
    client(Command::new(&tools().python).arg(script));
}

/// Runs `command` with a fresh server's port as its last argument; it
/// prints OK.
fn client(command: &mut Command) {
    let (_db, server) = serve();
    let out = command.arg(server.local_addr().port().to_string()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
}
