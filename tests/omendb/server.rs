//! The PostgreSQL wire protocol, driven by a real client (tokio-postgres)
//! against a server on an ephemeral loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use omendb::Database;
use omendb::server::{Auth, ServerHandle, ServerOptions};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

fn serve(options: ServerOptions) -> (Database, ServerHandle) {
    let db = Database::open_in_memory().unwrap();
    let server = db.serve(ServerOptions { listen: "127.0.0.1:0".parse().unwrap(), ..options }).unwrap();
    (db, server)
}

async fn connect_as(server: &ServerHandle, user: &str, password: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(server.local_addr().port()).user(user).dbname("omendb");
    if let Some(p) = password {
        config.password(p);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn connect(server: &ServerHandle) -> Client {
    connect_as(server, "app", None).await.unwrap()
}

fn code(e: &tokio_postgres::Error) -> SqlState {
    e.code().unwrap_or_else(|| panic!("no SQLSTATE in {e:?}")).clone()
}

/// The rows of a simple-protocol query, as text.
async fn simple(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_as_parameter_and_result() {
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, b BOOLEAN, s SMALLINT, i INT, l BIGINT, r REAL, d DOUBLE PRECISION, \
         n NUMERIC(12,2), txt TEXT, by BYTEA, day DATE, ts TIMESTAMP, tz TIMESTAMPTZ)",
    )
    .await
    .unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let ts: NaiveDateTime = day.and_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let tz: DateTime<Utc> = DateTime::from_naive_utc_and_offset(ts, Utc);
    let n = Decimal::new(-123_456, 2);
    let insert = c.prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)").await.unwrap();
    let inserted = c
        .execute(&insert, &[&1i32, &true, &-7i16, &i32::MIN, &i64::MAX, &1.5f32, &-2.25f64, &n, &"héllo", &vec![0u8, 255], &day, &ts, &tz])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let none: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
        &2i32,
        &None::<bool>,
        &None::<i16>,
        &None::<i32>,
        &None::<i64>,
        &None::<f32>,
        &None::<f64>,
        &None::<Decimal>,
        &None::<String>,
        &None::<Vec<u8>>,
        &None::<NaiveDate>,
        &None::<NaiveDateTime>,
        &None::<DateTime<Utc>>,
    ];
    c.execute(&insert, &none).await.unwrap();

    // Binary results (tokio-postgres asks for binary), typed by the plan.
    let row = c.query_one("SELECT * FROM t WHERE id = $1", &[&1i32]).await.unwrap();
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i16>(2), -7);
    assert_eq!(row.get::<_, i32>(3), i32::MIN);
    assert_eq!(row.get::<_, i64>(4), i64::MAX);
    assert_eq!(row.get::<_, f32>(5), 1.5);
    assert_eq!(row.get::<_, f64>(6), -2.25);
    assert_eq!(row.get::<_, Decimal>(7), n);
    assert_eq!(row.get::<_, String>(8), "héllo");
    assert_eq!(row.get::<_, Vec<u8>>(9), vec![0, 255]);
    assert_eq!(row.get::<_, NaiveDate>(10), day);
    assert_eq!(row.get::<_, NaiveDateTime>(11), ts);
    assert_eq!(row.get::<_, DateTime<Utc>>(12), tz);
    let nulls = c.query_one("SELECT * FROM t WHERE id = 2", &[]).await.unwrap();
    assert_eq!(nulls.get::<_, Option<String>>(8), None);
    assert_eq!(nulls.get::<_, Option<i64>>(4), None);
    assert_eq!(nulls.get::<_, Option<DateTime<Utc>>>(12), None);

    // Text results through the simple protocol, as psql sees them.
    let text = simple(&c, "SELECT b, n, txt, day FROM t WHERE id = 1").await;
    assert_eq!(text, vec![vec![Some("t".into()), Some("-1234.56".into()), Some("héllo".into()), Some("2024-02-29".into())]]);

    // Statement description: parameter types come from the plan.
    let s = c.prepare("SELECT txt FROM t WHERE l > $1 AND day = $2").await.unwrap();
    assert_eq!(s.params(), &[tokio_postgres::types::Type::INT8, tokio_postgres::types::Type::DATE]);
    assert_eq!(s.columns()[0].type_(), &tokio_postgres::types::Type::TEXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_report_their_status_and_conflicts() {
    let (_db, server) = serve(ServerOptions::default());
    let a = connect(&server).await;
    let b = connect(&server).await;
    a.batch_execute("CREATE TABLE acc (id INT PRIMARY KEY, v INT); INSERT INTO acc VALUES (1, 10), (2, 20)").await.unwrap();

    // Own writes are visible inside; a rollback undoes them.
    a.batch_execute("BEGIN").await.unwrap();
    a.execute("UPDATE acc SET v = v + 1 WHERE id = $1", &[&1i32]).await.unwrap();
    assert_eq!(a.query_one("SELECT v FROM acc WHERE id = 1", &[]).await.unwrap().get::<_, i32>(0), 11);
    assert_eq!(b.query_one("SELECT v FROM acc WHERE id = 1", &[]).await.unwrap().get::<_, i32>(0), 10);
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(b.query_one("SELECT v FROM acc WHERE id = 1", &[]).await.unwrap().get::<_, i32>(0), 10);

    // An error aborts the transaction: 25P02 until ROLLBACK; COMMIT rolls back.
    a.batch_execute("BEGIN; INSERT INTO acc VALUES (3, 30)").await.unwrap();
    assert_eq!(code(&a.batch_execute("SELECT nope FROM acc").await.unwrap_err()), SqlState::UNDEFINED_COLUMN);
    assert_eq!(code(&a.query("SELECT 1", &[]).await.unwrap_err()), SqlState::IN_FAILED_SQL_TRANSACTION);
    let end = a.simple_query("COMMIT").await.unwrap();
    assert!(matches!(end.last(), Some(SimpleQueryMessage::CommandComplete(0))));
    assert!(a.query_opt("SELECT v FROM acc WHERE id = 3", &[]).await.unwrap().is_none());

    // Two writers of one row at REPEATABLE READ: the second gets 40001
    // and can retry.
    a.batch_execute("BEGIN").await.unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    a.execute("UPDATE acc SET v = 100 WHERE id = 2", &[]).await.unwrap();
    let e = b.execute("UPDATE acc SET v = 200 WHERE id = 2", &[]).await.unwrap_err();
    assert_eq!(code(&e), SqlState::T_R_SERIALIZATION_FAILURE);
    a.batch_execute("COMMIT").await.unwrap();
    b.batch_execute("ROLLBACK").await.unwrap();
    b.execute("UPDATE acc SET v = v + 1 WHERE id = 2", &[]).await.unwrap();
    assert_eq!(a.query_one("SELECT v FROM acc WHERE id = 2", &[]).await.unwrap().get::<_, i32>(0), 101);

    // At READ COMMITTED, the connections' default, the second writer
    // waits for the first and then writes over its row.
    a.batch_execute("BEGIN").await.unwrap();
    a.execute("UPDATE acc SET v = v * 2 WHERE id = 2", &[]).await.unwrap();
    let waiter = tokio::spawn(async move {
        b.batch_execute("BEGIN").await.unwrap();
        let n = b.execute("UPDATE acc SET v = v + 1 WHERE id = $1", &[&2i32]).await.unwrap();
        b.batch_execute("COMMIT").await.unwrap();
        n
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(waiter.await.unwrap(), 1);
    assert_eq!(a.query_one("SELECT v FROM acc WHERE id = 2", &[]).await.unwrap().get::<_, i32>(0), 203);

    // tokio-postgres' own transaction API (BEGIN/COMMIT through the extended protocol).
    let mut c = connect(&server).await;
    let txn = c.transaction().await.unwrap();
    txn.execute("INSERT INTO acc VALUES ($1, $2)", &[&4i32, &40i32]).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(a.query_one("SELECT count(*) FROM acc", &[]).await.unwrap().get::<_, i64>(0), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates() {
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    c.batch_execute("CREATE TABLE u (id INT PRIMARY KEY, name TEXT NOT NULL)").await.unwrap();
    c.batch_execute("INSERT INTO u VALUES (1, 'a')").await.unwrap();
    let cases: &[(&str, SqlState)] = &[
        ("SELEC 1", SqlState::SYNTAX_ERROR),
        ("SELECT * FROM missing", SqlState::UNDEFINED_TABLE),
        ("SELECT nope FROM u", SqlState::UNDEFINED_COLUMN),
        ("INSERT INTO u VALUES (1, 'b')", SqlState::UNIQUE_VIOLATION),
        ("INSERT INTO u VALUES (2, NULL)", SqlState::NOT_NULL_VIOLATION),
        ("CREATE TABLE u (id INT PRIMARY KEY)", SqlState::DUPLICATE_TABLE),
        ("SAVEPOINT s", SqlState::NO_ACTIVE_SQL_TRANSACTION),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", SqlState::FEATURE_NOT_SUPPORTED),
        ("SHOW no_such_setting", SqlState::UNDEFINED_OBJECT),
    ];
    for (sql, expected) in cases {
        // Both protocols.
        assert_eq!(&code(&c.batch_execute(sql).await.unwrap_err()), expected, "{sql} (simple)");
        assert_eq!(&code(&c.execute(*sql, &[]).await.unwrap_err()), expected, "{sql} (extended)");
    }
    // Nothing changed, and the connection still works.
    assert_eq!(simple(&c, "SELECT id, name FROM u").await, vec![vec![Some("1".into()), Some("a".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_columns_have_postgres_names() {
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    c.batch_execute("CREATE TABLE n (k INT PRIMARY KEY, v BIGINT, s TEXT); INSERT INTO n VALUES (1, 2, 'x')").await.unwrap();
    let sql = "SELECT count(*), sum(v) AS total, n.v, v + 1, upper(s), CAST(max(k) AS TEXT), 1::int FROM n GROUP BY n.v, s";
    // Described (extended protocol) and sent with the rows (simple protocol).
    let described: Vec<String> = c.prepare(sql).await.unwrap().columns().iter().map(|c| c.name().to_owned()).collect();
    let expect = ["count", "total", "v", "?column?", "upper", "max", "int4"];
    assert_eq!(described, expect);
    let rows = c.simple_query(sql).await.unwrap();
    let row = rows.iter().find_map(|m| if let tokio_postgres::SimpleQueryMessage::Row(r) = m { Some(r) } else { None }).unwrap();
    let sent: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(sent, expect);
    // The fast path's rows are renamed too.
    let point = c.prepare("SELECT v * 2, s FROM n WHERE k = $1").await.unwrap();
    let row = c.query_one(&point, &[&1i32]).await.unwrap();
    assert_eq!(row.columns().iter().map(|c| c.name()).collect::<Vec<_>>(), ["?column?", "s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_session_functions() {
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    assert_eq!(simple(&c, "SHOW server_version").await, vec![vec![Some("15.0".into())]]);
    assert_eq!(simple(&c, "show transaction isolation level").await, vec![vec![Some("read committed".into())]]);
    c.batch_execute("SET application_name = 'billing'; SET extra_float_digits = 3; SET TIME ZONE 'UTC'").await.unwrap();
    assert_eq!(simple(&c, "SHOW application_name").await, vec![vec![Some("billing".into())]]);
    c.batch_execute("RESET application_name").await.unwrap();
    assert_eq!(simple(&c, "SHOW application_name").await, vec![vec![Some(String::new())]]);
    assert_eq!(code(&c.batch_execute("SET client_encoding = 'LATIN1'").await.unwrap_err()), SqlState::FEATURE_NOT_SUPPORTED);
    // Settings are the connection's own.
    c.batch_execute("SET myapp.tenant = '7'").await.unwrap();
    let other = connect(&server).await;
    assert_eq!(code(&other.batch_execute("SHOW myapp.tenant").await.unwrap_err()), SqlState::UNDEFINED_OBJECT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_and_cancel_stop_a_running_query() {
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    // Long enough to be still running when it is stopped, however fast the machine.
    let slow = "SELECT count(*) FROM generate_series(1, 1000000000000) AS s(a) WHERE a % 7 = 3";

    c.batch_execute("SET statement_timeout = 100").await.unwrap();
    assert_eq!(code(&c.batch_execute(slow).await.unwrap_err()), SqlState::QUERY_CANCELED);
    c.batch_execute("SET statement_timeout = 0").await.unwrap();

    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(code(&c.batch_execute(slow).await.unwrap_err()), SqlState::QUERY_CANCELED);
    canceller.await.unwrap();
    // A cancelled statement aborts its transaction, as any failed one.
    assert_eq!(code(&c.batch_execute("SELECT 1").await.unwrap_err()), SqlState::IN_FAILED_SQL_TRANSACTION);
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(simple(&c, "SELECT 1").await, vec![vec![Some("1".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_checked_by_scram() {
    let (_db, server) =
        serve(ServerOptions { auth: Auth::Password { user: "ada".into(), password: "s3cret".into() }, ..Default::default() });
    let c = connect_as(&server, "ada", Some("s3cret")).await.unwrap();
    assert_eq!(simple(&c, "SELECT 2").await, vec![vec![Some("2".into())]]);
    let wrong = connect_as(&server, "ada", Some("guess")).await.unwrap_err();
    assert_eq!(code(&wrong), SqlState::INVALID_PASSWORD);
    let nobody = connect_as(&server, "eve", Some("s3cret")).await.unwrap_err();
    assert_eq!(code(&nobody), SqlState::INVALID_PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_floods_lose_only_their_own_connection() {
    let (_db, server) = serve(ServerOptions { max_connections: 3, ..Default::default() });
    let good = connect(&server).await;
    good.batch_execute("CREATE TABLE k (id INT PRIMARY KEY)").await.unwrap();
    let addr = server.local_addr();
    let bad_inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A startup packet claiming 1 GiB.
        vec![0x40, 0, 0, 0, 0, 3, 0, 0],
        // A valid startup, then a Query message whose length runs past its end.
        {
            let mut m = startup_packet();
            m.extend_from_slice(&[b'Q', 0, 0, 0x10, 0, b'S']);
            m
        },
        // A valid startup, then an unknown message type.
        {
            let mut m = startup_packet();
            m.extend_from_slice(&[b'?', 0, 0, 0, 4]);
            m
        },
    ];
    for bytes in bad_inputs {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&bytes);
        // The client goes away mid-message; the server closes its side.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.read_to_end(&mut Vec::new());
    }
    // The garbage connections are gone (each closed at its client's EOF).
    connections(&server, 1);
    // A raw client that stalls mid-message holds its connection slot only.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(&startup_packet()).unwrap();
    // As a real client does, wait for ReadyForQuery before the next message.
    let mut answer = Vec::new();
    while !answer.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let mut buf = [0u8; 512];
        let n = stalled.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the connection during startup: {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    stalled.write_all(&[b'Q', 0, 0, 0, 20, b'S']).unwrap();
    good.batch_execute("INSERT INTO k VALUES (1)").await.unwrap();
    connections(&server, 2);

    // Past max_connections (good + stalled + one more = 3): refused with 53300.
    let _third = connect(&server).await;
    connections(&server, 3);
    let refused = connect_as(&server, "app", None).await.unwrap_err();
    assert_eq!(code(&refused), SqlState::TOO_MANY_CONNECTIONS);
    drop(stalled);
    connections(&server, 2);
    let again = connect(&server).await;
    assert_eq!(simple(&again, "SELECT count(*) FROM k").await, vec![vec![Some("1".into())]]);
    // The server is still whole for the first client too.
    assert_eq!(simple(&good, "SELECT id FROM k").await, vec![vec![Some("1".into())]]);
}

/// A protocol 3.0 startup message for user `app`.
fn startup_packet() -> Vec<u8> {
    let body = b"\x00\x03\x00\x00user\x00app\x00\x00";
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

/// Waits (up to 10 s) until the server has `n` connections open.
fn connections(server: &ServerHandle, n: usize) {
    for _ in 0..1000 {
        if server.connections() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} connections open, not {n}", server.connections());
}

#[test]
fn shutdown_closes_connections_and_keeps_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let server = db.serve(ServerOptions { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() }).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async {
        let c = connect(&server).await;
        c.batch_execute("CREATE TABLE s (id INT PRIMARY KEY); INSERT INTO s VALUES (1); BEGIN; INSERT INTO s VALUES (2)").await.unwrap();
        c
    });
    server.shutdown();
    // The open transaction was rolled back with its connection.
    assert!(rt.block_on(client.batch_execute("COMMIT")).is_err());
    db.close().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(crate::q(&db, "SELECT id FROM s"), crate::strs(&[&["1"]]));
}

/// COPY FROM STDIN as drivers send it (tokio-postgres: extended protocol),
/// and pgbench's schema steps around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_loads_rows_whole_or_not_at_all() {
    use futures::SinkExt;
    let (_db, server) = serve(ServerOptions::default());
    let c = connect(&server).await;
    c.batch_execute("create table acc(aid int not null, bid int, abalance int, filler char(84)) with (fillfactor=100)").await.unwrap();

    async fn copy(c: &Client, sql: &str, chunks: &[&[u8]]) -> Result<u64, tokio_postgres::Error> {
        let sink = c.copy_in::<_, bytes::Bytes>(sql).await?;
        let mut sink = std::pin::pin!(sink);
        for chunk in chunks {
            sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
        }
        sink.finish().await
    }
    let rows: String = (1..=10_000).map(|aid| format!("{aid}\t{}\t0\t\n", (aid - 1) / 1000 + 1)).collect();
    let (a, b) = rows.as_bytes().split_at(12_345);
    assert_eq!(copy(&c, "copy acc from stdin with (freeze on)", &[a, b]).await.unwrap(), 10_000);
    assert_eq!(simple(&c, "select count(*), sum(bid) from acc").await, [[Some("10000".into()), Some("55000".into())]]);

    // A bad row: 22000-class error naming the row, nothing loaded.
    let err = copy(&c, "copy acc (aid, bid) from stdin", &[b"10001\t1\n", b"x\t1\n"]).await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(message.contains("row 2"), "{err:?}");
    assert_eq!(simple(&c, "select count(*) from acc").await, [[Some("10000".into())]]);

    // Inside a transaction, CSV, then rolled back; the connection stays usable.
    c.batch_execute("BEGIN").await.unwrap();
    assert_eq!(copy(&c, "COPY acc (aid, filler) FROM STDIN (FORMAT csv)", &[b"20001,\"a,b\"\n20002,\n"]).await.unwrap(), 2);
    assert_eq!(simple(&c, "select filler from acc where aid = 20001").await, [[Some("a,b".into())]]);
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(simple(&c, "select count(*) from acc").await, [[Some("10000".into())]]);

    // pgbench's next steps: vacuum, the key, truncate.
    c.batch_execute("vacuum analyze acc; alter table acc add primary key (aid)").await.unwrap();
    let e = c.batch_execute("insert into acc(aid) values (1)").await.unwrap_err();
    assert_eq!(code(&e), SqlState::UNIQUE_VIOLATION);
    c.batch_execute("truncate acc").await.unwrap();
    assert_eq!(simple(&c, "select count(*) from acc").await, [[Some("0".into())]]);
    let e = copy(&c, "copy nope from stdin", &[]).await.unwrap_err();
    assert_eq!(code(&e), SqlState::UNDEFINED_TABLE);
}
