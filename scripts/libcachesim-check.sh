#!/usr/bin/env bash
# Cross-checks omen-tier's LRU and S3-FIFO against libCacheSim (the `libcachesim` Python package) on the
# synthetic workloads, replayed from identical oracleGeneral files at identical byte capacities.
#
#   scripts/libcachesim-check.sh [--small]
#
# Installs libcachesim from PyPI into a venv ($LIBCACHESIM_VENV, default ~/.cache/omendb-libcachesim-venv);
# if it cannot be installed, says so and exits 1. Prints both hit ratios per (trace, size) and the largest
# differences; exits 2 if LRU or S3-FIFO differs by more than $TOLERANCE (default 0.001) anywhere (they
# agreed to 6 decimals when this was written: omen-tier's S3-FIFO follows libCacheSim's S3FIFO.c step by step).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${LIBCACHESIM_VENV:-$HOME/.cache/omendb-libcachesim-venv}"
tolerance="${TOLERANCE:-0.001}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omendb-target}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "libcachesim-check: cannot create a venv at $venv (python3 -m venv failed)" >&2; exit 1; }
fi
if ! "$venv/bin/python" -c "import libcachesim" 2>/dev/null; then
    if ! "$venv/bin/pip" install --quiet libcachesim; then
        echo "libcachesim-check: 'pip install libcachesim' failed: libCacheSim is NOT checked" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$root" && cargo build --quiet --release -p omen-tier --example simulate)
"$CARGO_TARGET_DIR/release/examples/simulate" "$@" --write-oracle "$work" --classic-csv >"$work/ours.csv"

"$venv/bin/python" - "$work" "$tolerance" <<'PY'
import csv, sys
import libcachesim as lcs

work, tolerance = sys.argv[1], float(sys.argv[2])
print(f"libcachesim {getattr(lcs, '__version__', '?')}")
print(f"{'trace':<12} {'size':>5} {'capacity':>11} | {'lru ours':>9} {'lru lcs':>9} {'diff':>8} | {'s3f ours':>9} {'s3f lcs':>9} {'diff':>8}")
worst = {"lru": 0.0, "s3fifo": 0.0}
for row in csv.DictReader(open(f"{work}/ours.csv")):
    capacity = int(row["capacity_bytes"])
    path = f"{work}/{row['trace']}.oracleGeneral.bin"
    theirs = {}
    for name, make in (("lru", lambda: lcs.LRU(capacity)), ("s3fifo", lambda: lcs.S3FIFO(capacity, small_size_ratio=0.1, ghost_size_ratio=0.9, move_to_main_threshold=2))):
        reader = lcs.TraceReader(trace=path, trace_type=lcs.TraceType.ORACLE_GENERAL_TRACE,
                                 reader_init_params=lcs.ReaderInitParam(ignore_obj_size=False))
        req_miss, _byte_miss = make().process_trace(reader)
        theirs[name] = 1.0 - req_miss
    ours = {"lru": float(row["lru"]), "s3fifo": float(row["s3fifo"])}
    diff = {k: ours[k] - theirs[k] for k in ours}
    for k in diff:
        worst[k] = max(worst[k], abs(diff[k]))
    print(f"{row['trace']:<12} {float(row['size'])*100:>4.0f}% {capacity:>11} | {ours['lru']:>9.4f} {theirs['lru']:>9.4f} {diff['lru']:>+8.4f} | "
          f"{ours['s3fifo']:>9.4f} {theirs['s3fifo']:>9.4f} {diff['s3fifo']:>+8.4f}")
print(f"largest |difference| in object hit ratio: LRU {worst['lru']:.5f}, S3-FIFO {worst['s3fifo']:.5f}")
if max(worst.values()) > tolerance:
    print(f"a difference above {tolerance}: the simulators disagree", file=sys.stderr)
    sys.exit(2)
PY
