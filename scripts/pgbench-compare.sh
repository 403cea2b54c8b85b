#!/usr/bin/env bash
# pgbench, unmodified, against OmenDB's HTAP service and PostgreSQL 15 on
# this machine, in the same run and with the same settings (fsync on,
# synchronous_commit on; OmenDB at its default Durability::Full):
#
#   1. pgbench -i -s SCALE                       (initialization, timed)
#   2. pgbench -c 8 -j 2 -T SECS -M prepared     (TPC-B-like)
#   3. pgbench -S -c 1 -T SECS -M prepared       (select-only, 1 client)
#   4. pgbench -S -c 8 -j 2 -T SECS -M prepared  (select-only, 8 clients)
#
# Both servers run these at READ COMMITTED (their default): a write to a
# row another transaction holds waits for it. No retries (pgbench's
# default --max-tries=1); the table counts failed transactions (40001 or
# 40P01) per run.
#
# Prints TPS, p50 latency (from pgbench's per-transaction log) and the
# OmenDB/PostgreSQL ratio for each, as a Markdown table for
# docs/BENCHMARKS.md.
#
# SUITE=commits runs the durability issue's comparison instead: durable
# single-row INSERT transactions (one 100-byte text column and a random
# BIGINT key) from 1, 8 and 64 clients, reporting TPS, p50 and p99, through
# the service and embedded (bench-compare's `commits` bench: the row store
# in process, the same transactions from as many threads); the scale
# argument is then unused. Installs PostgreSQL 15 and pgbench from Debian's
# packages if they are missing (needs root), builds the service in release.
#
#   scripts/pgbench-compare.sh [SCALE] [SECONDS]     (default 10 30)
#   OMENDB_ONLY=1 scripts/pgbench-compare.sh          (skip PostgreSQL)
#   SUITE=commits scripts/pgbench-compare.sh 1 10     (durable inserts)
#   OMENDB_ARGS="--wal-io plain" scripts/...          (flags for the service)
set -euo pipefail
suite_name=${SUITE:-pgbench}
scale=${1:-10}
secs=${2:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/omendb-pgbench.XXXXXX)
pg_port=5544
omen_port=5433

. "$here/scripts/postgres-lib.sh"
pg_find

cleanup() {
  [ -n "${omen_pid:-}" ] && kill "$omen_pid" 2>/dev/null && wait "$omen_pid" 2>/dev/null || true
  pg_stop "$work"
  rm -rf "$work"
}
trap cleanup EXIT

# run NAME PORT ARGS...: one pgbench run; prints "tps p50_us failed p99_us".
run() {
  local name=$1 port=$2
  shift 2
  local logdir=$work/log-$name
  mkdir -p "$logdir"
  chmod 777 "$logdir"
  (cd "$logdir" && pgbench -h 127.0.0.1 -p "$port" -U postgres -M prepared -T "$secs" -l "$@" postgres >"$logdir/out" 2>&1) || {
    echo "pgbench $name failed:" >&2
    cat "$logdir/out" >&2
    echo "- -"
    return 0
  }
  local tps p50 p99 failed
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$logdir/out")
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$logdir/out")
  # Column 3 of pgbench's log is each transaction's latency in us.
  cat "$logdir"/pgbench_log.* | awk '{print $3}' | sort -n >"$logdir/latencies"
  p50=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$logdir/latencies")
  p99=$(awk '{a[NR]=$1} END {print a[int(NR*0.99+0.5)]}' "$logdir/latencies")
  echo "$tps $p50 ${failed:-0} $p99"
}

# init NAME PORT: pgbench -i; prints seconds.
init() {
  local start end
  start=$(date +%s.%N)
  pgbench -h 127.0.0.1 -p "$2" -U postgres -i -s "$scale" postgres >"$work/init-$1.out" 2>&1 || {
    echo "pgbench -i against $1 failed:" >&2
    cat "$work/init-$1.out" >&2
    exit 1
  }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}'
}

# The durable-insert transaction: a random key, so clients never collide.
cat >"$work/insert.sql" <<'SQL'
\set id random(1, 9000000000000000000)
INSERT INTO commits VALUES (:id, 'a hundred bytes of text, the same row for both servers: 0123456789012345678901234567890123456789');
SQL
chmod 644 "$work/insert.sql"

suite() {
  local name=$1 port=$2
  if [ "$suite_name" = commits ]; then
    psql -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE TABLE commits (id BIGINT PRIMARY KEY, v TEXT)" postgres >&2
    for c in 1 8 64; do
      echo "commits$c $(run "$name-c$c" "$port" -n -f "$work/insert.sql" -c "$c" -j 2)"
    done
    return
  fi
  echo "init $(init "$name" "$port")"
  echo "tpcb $(run "$name-tpcb" "$port" -c 8 -j 2)"
  echo "select1 $(run "$name-s1" "$port" -S -c 1)"
  echo "select8 $(run "$name-s8" "$port" -S -c 8 -j 2)"
}

echo "building the service (release)" >&2
cargo build --release --example htap_service --manifest-path "$here/Cargo.toml" >&2
target=${CARGO_TARGET_DIR:-$here/target}
# shellcheck disable=SC2086 # OMENDB_ARGS holds several flags
"$target/release/examples/htap_service" --no-workload --data-dir "$work/omendb" --listen "127.0.0.1:$omen_port" ${OMENDB_ARGS:-} >"$work/omendb.log" 2>&1 &
omen_pid=$!
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$omen_port" 2>/dev/null && break; sleep 0.2; done
echo "OmenDB: pgbench -s $scale, $secs s per run" >&2
omen=$(suite omendb "$omen_port")
kill "$omen_pid"
wait "$omen_pid" 2>/dev/null || true
omen_pid=

if [ -z "${OMENDB_ONLY:-}" ]; then
  pg_start "$work" "$pg_port" "-c fsync=on -c synchronous_commit=on -c shared_buffers=1GB -c max_connections=100"
  echo "PostgreSQL: pgbench -s $scale, $secs s per run" >&2
  pg=$(suite postgres "$pg_port")
else
  pg=$(printf 'init -\ntpcb - - - -\nselect1 - - - -\nselect8 - - - -\ncommits1 - - - -\ncommits8 - - - -\ncommits64 - - - -\n')
fi

field() { echo "$1" | awk -v k="$2" -v i="$3" '$1 == k {print $(i + 1)}'; }
ratio() { if [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; else echo "-"; fi; }

if [ "$suite_name" = commits ]; then
  # The same transactions embedded: the row store in process, no network.
  echo "OmenDB embedded: cargo bench --bench commits ($secs s per run)" >&2
  embedded=$(cd "$here/bench-compare" && cargo bench --bench commits -- "$secs" | awk -F'|' '/^\| [0-9]/ {gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $4); gsub(/ /, "", $5); print "commits" $2, $3, $4, $5}') || {
    echo "the embedded bench failed" >&2
    embedded=
  }
  echo
  echo "pgbench $(pgbench --version | awk '{print $3}'), durable single-row INSERT transactions, $secs s per run, -M prepared, loopback; $(nproc) cores"
  echo
  echo "| clients | OmenDB embedded TPS | OmenDB server TPS | PostgreSQL 15 TPS | embedded / PostgreSQL | server / PostgreSQL | embedded p50 / p99 (us) | server p50 / p99 (us) | PostgreSQL p50 / p99 (us) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in 1 8 64; do
    k=commits$c
    e_tps=$(field "$embedded" $k 1); o_tps=$(field "$omen" $k 1); p_tps=$(field "$pg" $k 1)
    echo "| $c | $e_tps | $o_tps | $p_tps | $(ratio "$e_tps" "$p_tps") | $(ratio "$o_tps" "$p_tps") | $(field "$embedded" $k 2) / $(field "$embedded" $k 3) | $(field "$omen" $k 2) / $(field "$omen" $k 4) | $(field "$pg" $k 2) / $(field "$pg" $k 4) |"
  done
  exit 0
fi

echo
echo "pgbench $(pgbench --version | awk '{print $3}'), scale $scale, $secs s per run, -M prepared, loopback; $(nproc) cores"
echo
echo "| run | OmenDB | PostgreSQL 15 | OmenDB / PostgreSQL |"
echo "|---|---:|---:|---:|"
echo "| \`pgbench -i -s $scale\` (s, lower is better) | $(field "$omen" init 1) | $(field "$pg" init 1) | $(ratio "$(field "$omen" init 1)" "$(field "$pg" init 1)") |"
for k in tpcb select1 select8; do
  case $k in
    tpcb) label="TPC-B-like, 8 clients" ;;
    select1) label="select-only (-S), 1 client" ;;
    select8) label="select-only (-S), 8 clients" ;;
  esac
  o_tps=$(field "$omen" $k 1); p_tps=$(field "$pg" $k 1)
  o_p50=$(field "$omen" $k 2); p_p50=$(field "$pg" $k 2)
  echo "| $label: TPS | $o_tps | $p_tps | $(ratio "$o_tps" "$p_tps") |"
  echo "| $label: p50 latency (us) | $o_p50 | $p_p50 | $(ratio "$o_p50" "$p_p50") |"
  echo "| $label: failed transactions | $(field "$omen" $k 3) | $(field "$pg" $k 3) | |"
done
