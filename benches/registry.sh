#!/usr/bin/env bash
# Registry bulk paths: import N synthetic donors into a fresh SQLite file and a fresh
# PostgreSQL database, then load the matching index from each; RUNS times each, printing
# every run (take the median). PostgreSQL: $BOAI_BENCH_PG_URL (a server URL), else a
# throwaway server from scripts/pg-temp.sh.
#   benches/registry.sh [N=1000000] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
cargo build --release --quiet
boai=$PWD/target/release/boai
work=$(mktemp -d)
pg_dir=""
cleanup() {
  rm -rf "$work"
  if [ -n "$pg_dir" ]; then scripts/pg-temp.sh stop "$pg_dir"; fi
}
trap cleanup EXIT
server=${BOAI_BENCH_PG_URL:-}
if [ -z "$server" ]; then
  server=$(scripts/pg-temp.sh start 2>"$work/pg.err")
  pg_dir=$(tail -1 "$work/pg.err")
fi
donors=$work/donors.txt
"$boai" synth donors --count "$n" --seed 5 --out "$donors" >/dev/null
patient='A*02:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01'
fresh() {
  case $1 in
    sqlite) rm -f "$work"/bench.db*; echo "sqlite://$work/bench.db" ;;
    postgres)
      psql "$server" -qc "DROP DATABASE IF EXISTS boai_bench" -c "CREATE DATABASE boai_bench" >/dev/null
      echo "${server%/*}/boai_bench" ;;
  esac
}
for backend in sqlite postgres; do
  for run in $(seq "$runs"); do
    url=$(fresh $backend)
    "$boai" db migrate --db "$url" >/dev/null
    "$boai" db add-station --db "$url" --branch BJ --name Beijing BJ01 >/dev/null
    echo "$backend import $n (run $run): $("$boai" import donors --db "$url" --station BJ01 "$donors" 2>&1 >/dev/null | tail -1)"
  done
  for run in $(seq "$runs"); do
    echo "$backend index load (run $run): $("$boai" search --db "$url" --max-mismatches 2 --patient "$patient" 2>&1 >/dev/null | tail -1)"
  done
done
