"""psycopg2, asyncpg and SQLAlchemy 2 against OmenDB's server: run by
tests/omendb/clients.rs.

Each driver in its default mode: psycopg2 and SQLAlchemy open a
transaction block around everything (DDL included), asyncpg prepares named
statements and introspects types. SQLAlchemy also reflects the tables,
which sends its pg_catalog queries (columns, primary keys, indexes).

Usage: python_drivers.py PORT. Exits non-zero (with a traceback) on the
first check that fails.
"""

import asyncio
import datetime as dt
import sys
from decimal import Decimal

import asyncpg
import psycopg2
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

port = int(sys.argv[1])
url = f"postgresql://app@127.0.0.1:{port}/omendb"


def psycopg2_default_transactions():
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    # psycopg2 sends BEGIN before the first statement: DDL runs in a block.
    cur.execute("CREATE TABLE p2 (id INT PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(10,2), at TIMESTAMP)")
    assert any("ROLLBACK" in n for n in conn.notices), conn.notices
    conn.commit()
    cur.execute("INSERT INTO p2 VALUES (%s, %s, %s, %s)", (1, "o'neil", Decimal("2.50"), dt.datetime(2024, 1, 2, 3, 4, 5)))
    conn.rollback()
    cur.execute("SELECT count(*) FROM p2")
    assert cur.fetchone() == (0,)
    cur.execute("INSERT INTO p2 VALUES (%s, %s, %s, %s)", (1, "o'neil", Decimal("2.50"), None))
    conn.commit()
    cur.execute("SELECT id, name, amount, at FROM p2 WHERE id = %s", (1,))
    assert cur.fetchall() == [(1, "o'neil", Decimal("2.50"), None)]
    try:
        cur.execute("INSERT INTO p2 VALUES (1, 'again', 0, NULL)")
        raise AssertionError("duplicate key accepted")
    except psycopg2.errors.UniqueViolation:
        conn.rollback()
    conn.close()


async def asyncpg_prepared_and_typed():
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE ap (id BIGINT PRIMARY KEY, name TEXT, d DATE, b BYTEA, f DOUBLE PRECISION, ok BOOLEAN)")
    await conn.execute("INSERT INTO ap VALUES ($1, $2, $3, $4, $5, $6)", 1, "x", dt.date(2024, 1, 2), b"\x00\x01", 1.5, True)
    await conn.executemany("INSERT INTO ap (id, name) VALUES ($1, $2)", [(2, "y"), (3, "z")])
    row = await conn.fetchrow("SELECT * FROM ap WHERE id = $1", 1)
    assert tuple(row) == (1, "x", dt.date(2024, 1, 2), b"\x00\x01", 1.5, True), row
    statement = await conn.prepare("SELECT name FROM ap WHERE id = $1")
    assert [await statement.fetchval(i) for i in (1, 2, 3)] == ["x", "y", "z"]
    async with conn.transaction():
        await conn.execute("UPDATE ap SET name = $1 WHERE id = $2", "w", 1)
    try:
        async with conn.transaction():
            await conn.execute("UPDATE ap SET name = 'lost' WHERE id = 1")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await conn.fetchval("SELECT name FROM ap WHERE id = 1") == "w"
    assert await conn.fetchval("SELECT count(*) FROM ap") == 3
    await conn.close()


def sqlalchemy_core_orm_and_reflection(driver):
    engine = sa.create_engine(f"postgresql+{driver}://app@127.0.0.1:{port}/omendb")
    meta = sa.MetaData()
    name = f"sa_{driver}"
    table = sa.Table(
        name,
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("score", sa.Float),
        sa.Index(f"{name}_label", "label", "score"),
    )
    # create_all checks for the table and creates it inside BEGIN ... COMMIT.
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "label": "a", "score": 1.5}, {"id": 2, "label": "b", "score": None}])
        with conn.begin_nested():
            conn.execute(table.update().where(table.c.id == 1).values(score=2.5))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.score).order_by(table.c.id)).all()
        assert rows == [(1, 2.5), (2, None)], rows
        assert conn.execute(sa.text("select pg_catalog.version()")).scalar().startswith("PostgreSQL 15")
    inspector = sa.inspect(engine)
    assert name in inspector.get_table_names()
    columns = {c["name"]: c for c in inspector.get_columns(name)}
    assert list(columns) == ["id", "label", "score"], columns
    assert isinstance(columns["id"]["type"], sa.BigInteger) and not columns["id"]["nullable"]
    assert isinstance(columns["label"]["type"], sa.Text) and not columns["label"]["nullable"]
    assert columns["score"]["nullable"]
    assert inspector.get_pk_constraint(name)["constrained_columns"] == ["id"]
    indexes = inspector.get_indexes(name)
    assert [(i["name"], i["column_names"], i["unique"]) for i in indexes] == [(f"{name}_label", ["label", "score"], False)], indexes
    reflected = sa.Table(name, sa.MetaData(), autoload_with=engine)
    assert [c.name for c in reflected.primary_key] == ["id"]
    assert [c.name for c in reflected.columns] == ["id", "label", "score"]
    engine.dispose()


async def sqlalchemy_asyncpg():
    engine = create_async_engine(f"postgresql+asyncpg://app@127.0.0.1:{port}/omendb")
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM ap"))).scalar() == 3
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "ap" in names, names
    await engine.dispose()


psycopg2_default_transactions()
asyncio.run(asyncpg_prepared_and_typed())
for driver in ("psycopg", "psycopg2"):
    sqlalchemy_core_orm_and_reflection(driver)
asyncio.run(sqlalchemy_asyncpg())
print("OK")
