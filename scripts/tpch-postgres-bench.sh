#!/usr/bin/env bash
# PostgreSQL 15's side of benches/tpch.rs: the same CSV, schema (with its
# primary keys) and queries as OmenDB and DuckDB.
#
#   scripts/tpch-postgres-bench.sh DATA_DIR QUERY_DIR SCHEMA_SQL RUNS TIMEOUT_S
#
# OMENDB_TPCH_QUERIES (e.g. `6,7,17`; default all 22) picks the queries.
#
# Starts a throwaway cluster (scripts/postgres-lib.sh installs PostgreSQL 15
# if it is missing), loads the tables with \copy, runs ANALYZE, then runs
# each query once to warm up and RUNS times. Prints one line per query:
# `qN<TAB>median seconds`, or `qN<TAB>timeout` when the warm-up ran past
# TIMEOUT_S seconds in its warm-up or a timed run (statement_timeout).
#
# Settings beyond the defaults give PostgreSQL this machine's memory and
# cores: shared_buffers 4GB, work_mem 256MB, effective_cache_size 16GB,
# two parallel workers per gather. fsync is off: the bench only reads.
set -euo pipefail
data=$1 queries=$2 schema=$3 runs=$4 timeout=$5
OMENDB_TPCH_QUERIES=${OMENDB_TPCH_QUERIES:-$(seq -s, 1 22)}
here=$(cd "$(dirname "$0")/.." && pwd)
port=${OMENDB_TPCH_PG_PORT:-5545}
work=$(mktemp -d /tmp/omendb-tpch-pg.XXXXXX)
. "$here/scripts/postgres-lib.sh"
trap 'pg_stop "$work"; rm -rf "$work"' EXIT
pg_find
pg_start "$work" "$port" "-c fsync=off -c shared_buffers=4GB -c work_mem=256MB -c effective_cache_size=16GB \
  -c max_parallel_workers_per_gather=2 -c max_wal_size=8GB"
# The C locale: psql prints \timing's figures with a decimal point.
psql_() { LC_ALL=C psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres postgres "$@"; }

start=$(date +%s%N)
# schema.sql holds no semicolons in its comments (see its header).
python3 - "$schema" "$data" >"$work/schema.sql" <<'PY'
import os, sys
for s in open(sys.argv[1]).read().split(";"):
    sql = "\n".join(l for l in s.splitlines() if not l.strip().startswith("--")).strip()
    if sql:
        table = sql.split()[2]
        print(sql + ";")
        print(f"\\copy {table} FROM '{os.path.join(sys.argv[2], table + '.csv')}' (FORMAT csv, HEADER true)")
PY
psql_ -f "$work/schema.sql"
psql_ -c "ANALYZE"
echo "PostgreSQL: loaded in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2

# script N TIMES: query N, TIMES times, timed by psql (\timing: the
# statement sent, run and its rows read back).
script() {
  echo "SET statement_timeout = '${timeout}s';"
  echo '\timing on'
  echo '\o /dev/null'
  for _ in $(seq 1 "$2"); do cat "$queries/q$1.sql"; echo ';'; done
}
# run N TIMES: prints psql's output, or `timeout` if a run of query N
# passed the timeout; fails on any other error.
run() {
  local out
  if ! out=$(script "$1" "$2" | psql_ 2>&1); then
    if grep -q 'statement timeout' <<<"$out"; then echo timeout; return 0; fi
    echo "q$1 failed: $out" >&2
    return 1
  fi
  echo "$out"
}
for n in ${OMENDB_TPCH_QUERIES//,/ }; do
  n=${n#q}
  # The warm-up first: a query past the timeout runs once only.
  out=$(run "$n" 1)
  [ "$out" != timeout ] && out=$(run "$n" "$runs")
  if [ "$out" = timeout ]; then printf 'q%d\ttimeout\n' "$n"; continue; fi
  sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | sort -n |
    awk -v n="$n" -v runs="$runs" '{t[NR] = $1} END {if (NR != runs) exit 1; printf "q%d\t%.6f\n", n, t[int(NR / 2) + 1] / 1000}'
done
