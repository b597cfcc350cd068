#!/usr/bin/env bash
# PostgreSQL for the local stack: Debian's server binaries, our own cluster under .haltless/pg on loopback,
# with TimescaleDB built from source (Debian has no package for it) and preloaded.
# Usage: compose/lib/postgres.sh install|start|stop|status|remove
# PG_INSTANCE (default "main") with its own HALTLESS_PG_PORT runs an independent cluster next to the main
# one, under pg-instances/<name> (e.g. for outage tests); `remove` stops such an instance and deletes it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../stack.env
source "$(dirname "$0")/../stack.env"
instance="${PG_INSTANCE:-main}"
: "${HALTLESS_TIMESCALEDB_VERSION:=2.28.3}"
# sha256 of the source tarball: the vendored file and GitHub's archive of the tag are the same bytes.
: "${HALTLESS_TIMESCALEDB_SHA256:=ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb}"

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
    bin=$(bindir)
  fi
  # Debian's package may create and start its own cluster on 5432; we never use it.
  timescaledb "$bin"
}

# TimescaleDB built from source against Debian's PostgreSQL, once. The source is the vendored tarball
# (${HALTLESS_SHARED:-<repo>/../shared}/vendor/), else the release's source from GitHub; the build lives in a
# cache outside the clone (/var/cache/haltless, or ~/.cache/haltless when not root), keyed by version. A run
# that finds the extension's files installed does nothing.
timescaledb() {
  local bin=$1 major version=$HALTLESS_TIMESCALEDB_VERSION
  major=$(basename "$(dirname "$bin")")
  installed() {
    [ -f "/usr/share/postgresql/$major/extension/timescaledb--$version.sql" ] &&
      [ -f "/usr/lib/postgresql/$major/lib/timescaledb-$version.so" ]
  }
  installed && return 0
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/haltless"
  [ "$(id -u)" != 0 ] || cache=/var/cache/haltless
  local dir="$cache/timescaledb-$version-pg$major"
  mkdir -p "$dir"
  (
    flock 9 # compose/test starts private clusters in parallel: one builds, the others wait for it
    installed && exit 0
    server_dev "$major"
    local server; server=$(dpkg-query -W -f='${Version}' "postgresql-$major")
    # A build made against another minor release's headers is made again.
    if [ "$(cat "$dir/built-against" 2>/dev/null)" != "$server" ]; then
      log "building TimescaleDB $version for PostgreSQL $server (about a minute, once; log: $dir/build.log)"
      timescaledb_source "$dir" "$version"
      rm -rf "$dir/src" && mkdir -p "$dir/src"
      tar -xzf "$dir/timescaledb-$version.tar.gz" -C "$dir/src" --strip-components=1
      (cd "$dir/src" && ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DCMAKE_BUILD_TYPE=Release \
        -DPG_CONFIG="$bin/pg_config" && make -C build -j"$(nproc)") >"$dir/build.log" 2>&1 ||
        { log "building TimescaleDB failed; see $dir/build.log"; tail -n 20 "$dir/build.log" >&2; exit 1; }
      echo "$server" >"$dir/built-against"
    fi
    log "installing TimescaleDB $version into PostgreSQL $major"
    make -C "$dir/src/build" install >>"$dir/build.log" 2>&1 ||
      { log "installing TimescaleDB failed; see $dir/build.log"; tail -n 20 "$dir/build.log" >&2; exit 1; }
  ) 9>"$dir/.lock"
}

# The source tarball in the cache, checked against its sha256: copied from the vendored sources, else
# downloaded from the release's tag on GitHub.
timescaledb_source() {
  local dir=$1 version=$2 file="timescaledb-$2.tar.gz"
  local vendored="${HALTLESS_SHARED:-$root/../shared}/vendor/$file"
  [ -f "$dir/$file" ] && return 0
  if [ -f "$vendored" ]; then
    cp "$vendored" "$dir/$file.part"
  else
    log "no $vendored: downloading TimescaleDB $version's source from GitHub"
    curl -fsSL --retry 3 -o "$dir/$file.part" \
      "https://github.com/timescale/timescaledb/archive/refs/tags/$version.tar.gz"
  fi
  echo "$HALTLESS_TIMESCALEDB_SHA256  $dir/$file.part" | sha256sum -c --quiet - ||
    { log "$file does not have the expected sha256 (HALTLESS_TIMESCALEDB_SHA256)"; rm -f "$dir/$file.part"; return 1; }
  mv "$dir/$file.part" "$dir/$file"
}

# The build tools and the server's headers. postgresql-server-dev-NN is pinned to the installed server's
# version: letting apt pick the newest would also upgrade postgresql-NN under a running server, whose new
# connections then fail to load libraries (`undefined symbol`) until it restarts. When that version has left
# the archive, both are upgraded together and start() restarts the server (see stale()).
server_dev() {
  local major=$1 server
  server=$(dpkg-query -W -f='${Version}' "postgresql-$major")
  if [ "$(dpkg-query -W -f='${Version}' "postgresql-server-dev-$major" 2>/dev/null)" = "$server" ] &&
    command -v cmake >/dev/null && [ -f /usr/include/openssl/ssl.h ]; then
    return 0
  fi
  log "installing cmake, postgresql-server-dev-$major ($server) and libssl-dev to build TimescaleDB"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libssl-dev \
    "postgresql-server-dev-$major=$server" >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libssl-dev \
      "postgresql-$major" "postgresql-server-dev-$major" >/dev/null
}

running() { [ -f "$data/postmaster.pid" ] && as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

configure() {
  local bin=$1 version preload=""
  version=$(basename "$(dirname "$bin")")
  if [ -f "/usr/share/postgresql/$version/extension/timescaledb.control" ]; then
    # Every database with the extension (each test's) runs TimescaleDB's scheduler as a background
    # worker, beside its policies' jobs.
    preload="shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_worker_processes = 64
timescaledb.max_background_workers = 48"
  fi
  # Rewritten on every start so port overrides apply; included last, so it wins over postgresql.conf.
  cat >"$data/haltless.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $HALTLESS_PG_PORT
unix_socket_directories = '$sock'
max_connections = 300
# Room for the readings being written (the newest chunk and its primary-key index): with 256 MB the readings
# projection stored about 85,000 readings/s while the gateway took 150,000; with 2 GB it kept up through that
# minute-long probe, and with 100,000/s for ten minutes (README, "Sustained and overload runs"). A server of
# its own would take about a quarter of the RAM.
shared_buffers = 2GB
# The continuous aggregates' refresh sorts a minute's readings by series and bucket: 32 MB (not 4) per sort
# took aggregating 9 million rows from 11.0 to 9.5 s; few other queries sort much.
work_mem = 32MB
# Bulk ingest writes the write-ahead log fast: checkpoints every 15 minutes or 4 GB of it rather than 1 GB,
# so fewer pages are written twice (a full-page image after each checkpoint).
max_wal_size = 4GB
checkpoint_timeout = 15min
$preload
CONF
  grep -q "^include_if_exists = 'haltless.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'haltless.conf'" >>"$data/postgresql.conf"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$data/haltless.conf"; fi
}

launch() {
  configure "$1"
  log "starting PostgreSQL on 127.0.0.1:$HALTLESS_PG_PORT"
  as_pg "$1/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start >/dev/null ||
    { log "PostgreSQL did not start; see $logfile"; tail -n 20 "$logfile" >&2; return 1; }
}

ready() {
  local i
  for i in $(seq 60); do
    "$1/pg_isready" -q -h 127.0.0.1 -p "$HALTLESS_PG_PORT" && return 0
    [ "$i" = 60 ] && { log "PostgreSQL is not ready after 60 s; see $logfile"; return 1; }
    sleep 1
  done
}

# Says why the running server must restart, if it must: its package was upgraded under it (new connections
# may fail to load libraries built for the new binary), or TimescaleDB was installed after it started.
stale() {
  local bin=$1 running_version installed_version preload major
  sql() { as_pg "$bin/psql" -XAtq -h "$sock" -p "$HALTLESS_PG_PORT" -U postgres -d postgres -c "$1"; }
  running_version=$(sql 'SHOW server_version') || { echo "it does not answer queries"; return 0; }
  installed_version=$("$bin/postgres" --version | sed 's/^postgres (PostgreSQL) //')
  if [ "$running_version" != "$installed_version" ]; then
    echo "it runs $running_version, the installed binaries are $installed_version"
    return 0
  fi
  major=$(basename "$(dirname "$bin")")
  preload=$(sql 'SHOW shared_preload_libraries')
  if [ -f "/usr/share/postgresql/$major/extension/timescaledb.control" ] && [[ "$preload" != *timescaledb* ]]; then
    echo "to preload TimescaleDB"
    return 0
  fi
  return 1
}

start() {
  install
  paths
  local bin why; bin=$(bindir)
  mkdir -p "$home" "$sock"
  touch "$logfile"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$home" "$sock" "$logfile"; fi
  [ "$logfile" -ef "$link" ] || ln -sfn "$logfile" "$link"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $data"
    # Text sorts by code point either way (C.UTF-8's order is UTF-8's byte order), but PostgreSQL compares
    # with memcmp, and sorts with abbreviated keys, only when the collation is named C: the readings key's
    # metric is compared many times for each row stored.
    as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 --lc-collate=C \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  fi
  running || launch "$bin"
  ready "$bin"
  if why=$(stale "$bin"); then
    log "restarting PostgreSQL: $why"
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    launch "$bin"
    ready "$bin"
  fi
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
