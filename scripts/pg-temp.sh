#!/usr/bin/env bash
# Starts a throwaway PostgreSQL from Debian's binaries (installing the `postgresql` package if
# it is missing), as the `postgres` user, in a temporary directory, on a loopback port, and
# prints its URL on stdout. Stop it with: scripts/pg-temp.sh stop DIR (DIR is printed on
# stderr, and written to $DIR/url beside the URL).
#   url=$(scripts/pg-temp.sh start)   # postgres://postgres@127.0.0.1:PORT/postgres
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

case "${1:-start}" in
stop)
  dir=${2:?usage: pg-temp.sh stop DIR}
  bin=$(find_bin)
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  else
    "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit 0
  ;;
start) ;;
*) echo "usage: pg-temp.sh start | stop DIR" >&2; exit 2 ;;
esac

bin=$(find_bin)
if [ -z "$bin" ]; then
  echo "installing Debian's postgresql package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null; }
  bin=$(find_bin)
fi
[ -n "$bin" ] || { echo "PostgreSQL binaries not found after install" >&2; exit 1; }

dir=$(mktemp -d /tmp/boai-pg.XXXXXX)
chmod 755 "$dir"
# A free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
run "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
url="postgres://postgres@127.0.0.1:$port/postgres"
echo "$url" > "$dir/url"
echo "$dir" >&2
echo "$url"
