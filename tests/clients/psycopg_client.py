"""psycopg 3 against OmenDB's server: run by tests/omendb/clients.rs.

Usage: psycopg_client.py PORT. Exits non-zero (with a traceback) on the
first check that fails.
"""

import datetime as dt
import sys
from decimal import Decimal

import psycopg
from psycopg import errors

port = int(sys.argv[1])
dsn = f"host=127.0.0.1 port={port} user=app dbname=omendb"

with psycopg.connect(dsn, autocommit=True) as conn:
    version = conn.execute("SELECT version()").fetchone()[0]
    assert version.startswith("PostgreSQL 15"), version
    assert conn.execute("SELECT current_schema()").fetchone()[0] == "public"
    assert conn.execute("SHOW standard_conforming_strings").fetchone()[0] == "on"

    conn.execute(
        "CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(10,2), qty BIGINT, ok BOOLEAN,"
        " day DATE, ts TIMESTAMP, tz TIMESTAMPTZ, data BYTEA, r DOUBLE PRECISION, s SMALLINT)"
    )
    row = (
        1,
        "héllo",
        Decimal("12.34"),
        2**40,
        True,
        dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.timezone.utc),
        b"\x00\xff",
        -2.5,
        -7,
    )
    conn.execute("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
    conn.execute("INSERT INTO items (id) VALUES (%s)", (2,))
    got = conn.execute("SELECT * FROM items WHERE id = %s", (1,)).fetchone()
    assert got == row, got
    # Binary results too.
    with conn.cursor(binary=True) as cur:
        assert cur.execute("SELECT * FROM items WHERE id = %s", (1,)).fetchone() == row
    assert conn.execute("SELECT name, price FROM items WHERE id = 2").fetchone() == (None, None)

    # Past psycopg's prepare threshold (5), the statement is a named one.
    for i in range(8):
        assert conn.execute("SELECT count(*) FROM items WHERE id <= %s", (i,)).fetchone()[0] == min(i, 2)

    # COPY FROM STDIN, text format rows written by psycopg.
    with conn.cursor() as cur:
        with cur.copy("COPY items (id, name, qty) FROM STDIN") as copy:
            for i in range(10, 1010):
                copy.write_row((i, f"n{i}\tx", i * 2))
    assert conn.execute("SELECT count(*), sum(qty) FROM items WHERE id >= 10").fetchone() == (1000, sum(i * 2 for i in range(10, 1010)))
    assert conn.execute("SELECT name FROM items WHERE id = 10").fetchone()[0] == "n10\tx"

    # SQLSTATEs map to psycopg's exception classes.
    for sql, error in [
        ("SELECT * FROM nope", errors.UndefinedTable),
        ("SELECT nope FROM items", errors.UndefinedColumn),
        ("SELEC 1", errors.SyntaxError),
        ("INSERT INTO items (id) VALUES (1)", errors.UniqueViolation),
    ]:
        try:
            conn.execute(sql)
            raise AssertionError(f"{sql} succeeded")
        except error:
            pass

    # Introspection psycopg runs for types it does not know.
    info = psycopg.types.TypeInfo.fetch(conn, "numeric")
    assert info is not None and info.oid == 1700, info

# Transactions (psycopg opens them itself) and a write-write conflict at
# REPEATABLE READ (at the default READ COMMITTED, b would wait for a).
a = psycopg.connect(dsn)
b = psycopg.connect(dsn)
b.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
a.execute("UPDATE items SET qty = 1 WHERE id = 2")
try:
    b.execute("UPDATE items SET qty = 2 WHERE id = 2")
    b.commit()
    raise AssertionError("the second writer committed")
except errors.SerializationFailure:
    b.rollback()
a.commit()
assert b.execute("SELECT qty FROM items WHERE id = 2").fetchone()[0] == 1
b.rollback()
try:
    b.execute("SELECT 1/0")
except errors.DivisionByZero:
    pass
try:
    b.execute("SELECT 1")
    raise AssertionError("a failed transaction accepted a statement")
except errors.InFailedSqlTransaction:
    b.rollback()

# Nested transactions are savepoints: an error inside one is undone with it
# and the outer transaction goes on.
with a.transaction():
    a.execute("UPDATE items SET qty = 5 WHERE id = 2")
    try:
        with a.transaction():
            a.execute("UPDATE items SET qty = 6 WHERE id = 2")
            a.execute("INSERT INTO items (id) VALUES (2)")
    except errors.UniqueViolation:
        pass
    with a.transaction():
        a.execute("UPDATE items SET qty = qty + 1 WHERE id = 2")
assert b.execute("SELECT qty FROM items WHERE id = 2").fetchone()[0] == 6
b.rollback()
a.close()
b.close()
print("OK")
