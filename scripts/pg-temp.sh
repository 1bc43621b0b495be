#!/usr/bin/env bash
# Starts a throwaway PostgreSQL from Debian's binaries (installing the `postgresql` package if
# it is missing), as the `postgres` user, in a temporary directory, on a loopback port, and
# prints its URL on stdout. Stop it with: scripts/pg-temp.sh stop DIR (DIR is printed on
# stderr, and written to $DIR/url beside the URL). The server speaks TLS too, with the
# certificate a client checks it against at $DIR/ca.crt.
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
# TLS with a self-signed certificate for 127.0.0.1 (ca.crt: what a client verifies it
# against), so the tests can connect with sslmode=verify-full as to a managed server.
tls=""
if command -v openssl >/dev/null; then
  # A throwaway certificate authority, and the server's certificate signed by it.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=boai test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" >/dev/null 2>&1
  chmod 644 "$dir/ca.crt" && chmod 600 "$dir/server.key"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/server.key" "$dir/server.crt"; fi
  tls="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
fi
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 $tls" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
url="postgres://postgres@127.0.0.1:$port/postgres"
echo "$url" > "$dir/url"
echo "$dir" >&2
echo "$url"
