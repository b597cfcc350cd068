#!/usr/bin/env bash
# Apache Kafka for the local stack: a KRaft broker+controller run from Maven Central jars on Java 17+.
# Usage: compose/lib/kafka.sh install|start|stop|status|topics [TopicCommand args...]
# KAFKA_INSTANCE (default "main") with its own HALTLESS_KAFKA_PORT/HALTLESS_KAFKA_CONTROLLER_PORT runs
# an independent broker under .haltless/kafka/instances/<name> (e.g. for fault-injection tests).
# HALTLESS_KAFKA_EXTRA: extra server.properties lines for a new instance (e.g. to try a broker setting).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../stack.env
source "$(dirname "$0")/../stack.env"
instance="${KAFKA_INSTANCE:-main}"
pom="$root/compose/kafka/pom.xml"
libs="$HALTLESS_STATE_DIR/kafka/$HALTLESS_KAFKA_VERSION/libs"
home="$HALTLESS_STATE_DIR/kafka/instances/$instance"
pidfile="$home/kafka.pid"
logfile="$HALTLESS_STATE_DIR/logs/kafka-$instance.log"
log4j="-Dlog4j2.configurationFile=$root/compose/kafka/log4j2.properties"

# Resolves the broker and tool jars once per Kafka version (again if pom.xml changes).
install() {
  local stamp; stamp="$(sha256sum "$pom" | cut -c1-16)"
  [ "$(cat "$libs/.complete" 2>/dev/null)" = "$stamp" ] && return 0
  command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
  command -v mvn >/dev/null || { apt-get update -qq && apt-get install -y -qq maven >/dev/null; }
  log "fetching Apache Kafka $HALTLESS_KAFKA_VERSION from Maven Central"
  rm -rf "$libs.new" "$libs.old"
  mvn -B -f "$pom" -Dkafka.version="$HALTLESS_KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.new" >"$HALTLESS_STATE_DIR/logs/kafka-install.log" 2>&1 ||
    { log "Maven could not fetch Kafka; see $HALTLESS_STATE_DIR/logs/kafka-install.log"; tail -n 20 "$HALTLESS_STATE_DIR/logs/kafka-install.log" >&2; return 1; }
  echo "$stamp" >"$libs.new/.complete"
  # Swap rather than delete: a running broker keeps reading the jars it already opened.
  if [ -d "$libs" ]; then mv "$libs" "$libs.old"; fi
  mv "$libs.new" "$libs"
}

tool() { java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dhaltless.log.level=warn "$log4j" -cp "$libs/*" "$@"; }

running() {
  local pid; pid=$(cat "$pidfile" 2>/dev/null) || return 1
  grep -qF "$home/server.properties" "/proc/$pid/cmdline" 2>/dev/null
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

configure() {
  mkdir -p "$home/data"
  cat >"$home/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$HALTLESS_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$HALTLESS_KAFKA_PORT,CONTROLLER://127.0.0.1:$HALTLESS_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$HALTLESS_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$home/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
${HALTLESS_KAFKA_EXTRA:-}
CONF
  if [ ! -f "$home/data/meta.properties" ]; then
    log "formatting KRaft storage for Kafka ($instance)"
    local id; id=$(tool kafka.tools.StorageTool random-uuid)
    tool kafka.tools.StorageTool format -t "$id" -c "$home/server.properties" >/dev/null
  fi
}

start() {
  install
  if running; then return 0; fi
  local port
  for port in "$HALTLESS_KAFKA_PORT" "$HALTLESS_KAFKA_CONTROLLER_PORT"; do
    if listening "$port"; then log "port $port is taken by another process; Kafka ($instance) not started"; return 1; fi
  done
  configure
  log "starting Kafka $HALTLESS_KAFKA_VERSION ($instance) on 127.0.0.1:$HALTLESS_KAFKA_PORT"
  if [ -f "$logfile" ]; then mv -f "$logfile" "$logfile.1"; fi
  nohup java -Xms256m -Xmx"${KAFKA_HEAP:-1g}" -XX:+UseG1GC -Djava.awt.headless=true "$log4j" \
    -cp "$libs/*" kafka.Kafka "$home/server.properties" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 240); do
    if grep -q "Kafka Server started" "$logfile" && listening "$HALTLESS_KAFKA_PORT"; then return 0; fi
    running || { log "Kafka ($instance) exited; see $logfile"; tail -n 20 "$logfile" >&2; return 1; }
    sleep 0.5
  done
  log "Kafka ($instance) did not start within 120 s; see $logfile"
  return 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$pidfile")
    log "stopping Kafka ($instance)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

status() {
  local name="kafka"; [ "$instance" = main ] || name="kafka[$instance]"
  local state=stopped; if running; then state=running; fi
  printf '%-9s %-8s %s\n' "$name" "$state" "$HALTLESS_KAFKA_BROKERS (Kafka $HALTLESS_KAFKA_VERSION, KRaft)"
}

# Runs the topic tool against this instance, e.g. `compose/lib/kafka.sh topics --list`.
topics() { install; tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HALTLESS_KAFKA_BROKERS" "$@"; }

cmd=${1:-status}
case "$cmd" in
  install | start | stop | status) "$cmd" ;;
  topics) shift; topics "$@" ;;
  *) echo "usage: $0 install|start|stop|status|topics [args...]" >&2; exit 2 ;;
esac
