#!/usr/bin/env bash
# Generates TPC-H data and DuckDB's answers for tests/omendb/tpch.rs, once:
# installs tpchgen-cli and duckdb (pinned) in a virtualenv, writes
# $OMENDB_TPCH_DIR/sf<SF>/data/*.csv and .../answers/q*.tsv, prints the
# sf directory. Needs python3 with venv and access to PyPI.
#
#   scripts/tpch-data.sh [SCALE_FACTOR]     (default 0.1)
set -euo pipefail
sf=${1:-0.1}
here=$(cd "$(dirname "$0")/.." && pwd)
root=${OMENDB_TPCH_DIR:-$HOME/.cache/omendb-tpch}
dir=$root/sf$sf
stamp=$dir/.done-$(cat "$here/tests/tpch/queries/"*.sql "$here/tests/tpch/schema.sql" "$here/scripts/tpch_answers.py" | cksum | cut -d' ' -f1)
if [ -f "$stamp" ]; then
  echo "$dir"
  exit 0
fi
venv=$root/venv
if [ ! -x "$venv/bin/tpchgen-cli" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet tpchgen-cli==4.0.0 duckdb==2.0.0 >&2
fi
rm -rf "$dir"
mkdir -p "$dir"
"$venv/bin/tpchgen-cli" csv -s "$sf" --output-dir "$dir/data" >&2
"$venv/bin/python" "$here/scripts/tpch_answers.py" "$dir/data" "$here/tests/tpch/queries" "$here/tests/tpch/schema.sql" "$dir/answers" >&2
touch "$stamp"
echo "$dir"
