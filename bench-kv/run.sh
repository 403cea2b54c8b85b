#!/usr/bin/env bash
# Installs what the rocksdb crate needs to build (libclang, a C++
# compiler), then runs the KV comparison. Arguments go to the bench:
#   bash bench-kv/run.sh                      # 10M keys x 1 KB, 1M ops per run
#   bash bench-kv/run.sh --keys 1000000       # a quicker run
# Needs about 3x the data size free under $TMPDIR (log, run, RocksDB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
  echo "installing libclang-dev and clang (apt)" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev clang >&2
fi
cd "$here"
cargo bench --bench kv -- "$@"
