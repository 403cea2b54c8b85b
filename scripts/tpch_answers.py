"""Reference answers for the TPC-H test, from DuckDB (an independent engine).

Usage: tpch_answers.py DATA_DIR QUERY_DIR SCHEMA_SQL OUT_DIR

Loads DATA_DIR/<table>.csv (tpchgen-cli's CSV, with a header) into the
schema of SCHEMA_SQL, runs QUERY_DIR/q1.sql .. q22.sql and writes each
answer to OUT_DIR/qN.tsv: one row per line, cells separated by tabs,
NULL as NULL, decimals with their scale, dates as YYYY-MM-DD, floats with
repr() (tests/omendb/tpch.rs compares numbers with a tolerance).
"""

import decimal
import os
import sys

import duckdb


def cell(v):
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return str(v)
    return str(v)


def main():
    data, queries, schema, out = sys.argv[1:5]
    con = duckdb.connect()
    for statement in open(schema).read().split(";"):
        lines = [l for l in statement.splitlines() if not l.strip().startswith("--")]
        sql = "\n".join(lines).strip()
        if not sql:
            continue
        con.execute(sql)
        table = sql.split()[2]
        con.execute(f"COPY {table} FROM '{os.path.join(data, table + '.csv')}' (HEADER)")
    os.makedirs(out, exist_ok=True)
    for n in range(1, 23):
        sql = open(os.path.join(queries, f"q{n}.sql")).read()
        rows = con.execute(sql).fetchall()
        with open(os.path.join(out, f"q{n}.tsv"), "w") as f:
            for row in rows:
                f.write("\t".join(cell(v) for v in row) + "\n")


if __name__ == "__main__":
    main()
