#!/usr/bin/env bash
# The test command: every crate's tests, on SQLite and on PostgreSQL, the pages in a real
# headless Chromium (scripts/browser-deps.sh installs Debian's chromium and chromium-driver). Uses the server at
# $BOAI_TEST_PG_URL when set, else starts a throwaway one (scripts/pg-temp.sh: Debian's
# PostgreSQL, as the postgres user, temporary directory, loopback port) and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BOAI_TEST_PG_URL:-}" ]; then
  pg_log=$(mktemp)
  BOAI_TEST_PG_URL=$(scripts/pg-temp.sh start 2>"$pg_log") || { cat "$pg_log" >&2; exit 1; }
  pg_dir=$(tail -n 1 "$pg_log")
  trap 'scripts/pg-temp.sh stop "$pg_dir"; rm -f "$pg_log"' EXIT
  export BOAI_TEST_PG_URL
  # The server's TLS certificate, for the test that connects with sslmode=verify-full.
  if [ -f "$pg_dir/ca.crt" ]; then export BOAI_TEST_PG_CA="$pg_dir/ca.crt"; fi
fi
echo "PostgreSQL for tests: $BOAI_TEST_PG_URL"
# Headless Chromium and chromedriver for the web pages' browser tests.
scripts/browser-deps.sh
cargo test --workspace --locked "$@"
