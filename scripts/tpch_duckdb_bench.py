"""DuckDB's side of benches/tpch.rs: the same CSV, schema and queries.

Usage: tpch_duckdb_bench.py DATA_DIR QUERY_DIR SCHEMA_SQL RUNS

Loads the tables into an in-memory DuckDB database (its native tables),
runs each query once to warm up and then RUNS times, and prints one line
per query: `qN<TAB>median seconds`. OMENDB_TPCH_QUERIES (e.g. `6,7,17`;
default all 22) picks the queries.
"""

import os
import statistics
import sys
import time

import duckdb


def main():
    data, queries, schema, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    con = duckdb.connect()
    for statement in open(schema).read().split(";"):
        sql = "\n".join(l for l in statement.splitlines() if not l.strip().startswith("--")).strip()
        if sql:
            con.execute(sql)
            table = sql.split()[2]
            con.execute(f"COPY {table} FROM '{os.path.join(data, table + '.csv')}' (HEADER)")
    chosen = os.environ.get("OMENDB_TPCH_QUERIES")
    numbers = [int(q.strip().lstrip("q")) for q in chosen.split(",")] if chosen else range(1, 23)
    for n in numbers:
        sql = open(os.path.join(queries, f"q{n}.sql")).read()
        con.execute(sql).fetchall()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - start)
        print(f"q{n}\t{statistics.median(times)}", flush=True)


if __name__ == "__main__":
    main()
