#!/usr/bin/env bash
# Index snapshots: import N synthetic donors into a fresh SQLite file (and a PostgreSQL
# database with BOAI_BENCH_PG_URL set, a server URL), then RUNS times each: write a snapshot
# (`boai index snapshot`: read the index from the store, write the file), and start
# `boai serve` to ready (/readyz 200) from the store and from the snapshot, alternately.
# Prints every run (take the median): the file's size, the write time, start-to-ready
# wall time, and the server's own figure for the index load.
#   benches/snapshot.sh [N=1000000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
cargo build --release --quiet
boai=$PWD/target/release/boai
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$boai" synth donors --count "$n" --seed 5 --out "$work/donors.txt" >/dev/null
urls="sqlite://$work/bench.db"
if [ -n "${BOAI_BENCH_PG_URL:-}" ]; then
  psql "$BOAI_BENCH_PG_URL" -qc "DROP DATABASE IF EXISTS boai_snapshot_bench" -c "CREATE DATABASE boai_snapshot_bench" >/dev/null
  urls="$urls ${BOAI_BENCH_PG_URL%/*}/boai_snapshot_bench"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')

# Start a server (extra arguments after the URL), wait for /readyz, print the wall time and
# its load line, stop it.
ready() {
  local url=$1; shift
  local start; start=$(date +%s.%N)
  "$boai" serve --db "$url" --addr "127.0.0.1:$port" "$@" 2>"$work/serve.err" >/dev/null &
  server_pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
    sleep 0.02
  done
  local end; end=$(date +%s.%N)
  sleep 0.2
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=""
  printf 'ready in %.2f s (%s)\n' "$(awk "BEGIN {print $end - $start}")" "$(grep 'index loaded' "$work/serve.err" | sed 's/; serving.*//')"
}

for url in $urls; do
  backend=${url%%:*}
  "$boai" db migrate --db "$url" >/dev/null
  "$boai" db add-station --db "$url" --branch BJ --name Beijing BJ01 >/dev/null
  echo "$backend import $n: $("$boai" import donors --db "$url" --station BJ01 "$work/donors.txt" 2>&1 >/dev/null | tail -1)"
  for run in $(seq "$runs"); do
    echo "$backend snapshot write (run $run): $("$boai" index snapshot --db "$url" --out "$work/index.snapshot")"
  done
  ls -l "$work/index.snapshot" | awk -v n="$n" '{printf "snapshot size: %d bytes (%.1f bytes/donor)\n", $5, $5 / n}'
  for run in $(seq "$runs"); do
    echo "$backend serve from the store (run $run): $(ready "$url")"
    echo "$backend serve from the snapshot (run $run): $(ready "$url" --snapshot "$work/index.snapshot")"
  done
done
