#!/usr/bin/env bash
# PostgreSQL for the local stack: Debian's server binaries, our own cluster under .haltless/pg on loopback.
# Usage: compose/lib/postgres.sh install|start|stop|status|remove
# PG_INSTANCE (default "main") with its own HALTLESS_PG_PORT runs an independent cluster next to the main
# one, under pg-instances/<name> (e.g. for outage tests); `remove` stops such an instance and deletes it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../stack.env
source "$(dirname "$0")/../stack.env"
instance="${PG_INSTANCE:-main}"

bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# The server runs as the `postgres` user, so its files must be reachable by it. If the clone's parent
# folders are not traversable by other users (e.g. a private home), the cluster lives under
# /var/lib/haltless/<hash of the repo path>/pg instead, and .haltless/logs/postgres.log links to its log.
paths() {
  local name=pg; [ "$instance" = main ] || name="pg-instances/$instance"
  local fallback; fallback="/var/lib/haltless/$(printf %s "$root" | sha256sum | cut -c1-12)/$name"
  home="$HALTLESS_STATE_DIR/$name"
  if [ -f "$fallback/data/PG_VERSION" ]; then
    home=$fallback
  elif [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    chmod o+x "$HALTLESS_STATE_DIR" "$HALTLESS_STATE_DIR/logs"
    as_pg test -x "$HALTLESS_STATE_DIR/logs" || home=$fallback
  fi
  data="$home/data"
  sock="$home/run"
  link="$HALTLESS_STATE_DIR/logs/postgres.log"
  [ "$instance" = main ] || link="$HALTLESS_STATE_DIR/logs/postgres-$instance.log"
  logfile=$link
  [ "$home" = "$HALTLESS_STATE_DIR/$name" ] || logfile="$home/postgres.log"
}

install() {
  local bin; bin=$(bindir)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
    log "installing PostgreSQL (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  fi
  # Debian's package may create and start its own cluster on 5432; we never use it.
}

running() { [ -f "$data/postmaster.pid" ] && as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

configure() {
  local bin=$1 version preload=""
  version=$(basename "$(dirname "$bin")")
  if [ -f "/usr/share/postgresql/$version/extension/timescaledb.control" ]; then
    preload="shared_preload_libraries = 'timescaledb'"
  fi
  # Rewritten on every start so port overrides apply; included last, so it wins over postgresql.conf.
  cat >"$data/haltless.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $HALTLESS_PG_PORT
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
$preload
CONF
  grep -q "^include_if_exists = 'haltless.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'haltless.conf'" >>"$data/postgresql.conf"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$data/haltless.conf"; fi
}

start() {
  install
  paths
  local bin; bin=$(bindir)
  mkdir -p "$home" "$sock"
  touch "$logfile"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$home" "$sock" "$logfile"; fi
  [ "$logfile" -ef "$link" ] || ln -sfn "$logfile" "$link"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  fi
  if ! running; then
    configure "$bin"
    log "starting PostgreSQL on 127.0.0.1:$HALTLESS_PG_PORT"
    as_pg "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null ||
      { log "PostgreSQL did not start; see $logfile"; tail -n 20 "$logfile" >&2; return 1; }
  fi
  local i
  for i in $(seq 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$HALTLESS_PG_PORT" && break
    [ "$i" = 60 ] && { log "PostgreSQL is not ready after 60 s; see $logfile"; return 1; }
    sleep 1
  done
  as_pg "$bin/psql" -q -h "$sock" -p "$HALTLESS_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT 'CREATE ROLE haltless LOGIN SUPERUSER PASSWORD ''haltless'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'haltless') \gexec
SELECT 'CREATE DATABASE haltless OWNER haltless'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'haltless') \gexec
SQL
}

stop() {
  paths
  if running; then
    log "stopping PostgreSQL"
    as_pg "$(bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
}

status() {
  paths
  if running; then echo "postgres  running  $HALTLESS_DATABASE_URL"; else echo "postgres  stopped  $HALTLESS_DATABASE_URL"; fi
}

remove() {
  [ "$instance" != main ] || { log "refusing to remove the main PostgreSQL"; return 1; }
  stop
  rm -rf "$home" "$link"
}

cmd=${1:-status}
case "$cmd" in
  install | start | stop | status | remove) "$cmd" ;;
  *) echo "usage: $0 install|start|stop|status|remove" >&2; exit 2 ;;
esac
