#!/usr/bin/env bash
# Apache Kafka for the local stack: a KRaft broker+controller from Maven Central jars, run on Java 17.
# KAFKA_INSTANCE (default "main") with its own ports gives an independent broker, e.g. for fault tests.
set -euo pipefail
source "$(dirname "$0")/../stack.env"
instance="${KAFKA_INSTANCE:-main}"
libs="$HALTLESS_STATE_DIR/kafka/$HALTLESS_KAFKA_VERSION/libs"
home="$HALTLESS_STATE_DIR/kafka/instances/$instance"
pidfile="$home/kafka.pid"
logfile="$HALTLESS_STATE_DIR/logs/kafka-$instance.log"

install() {
  if [ ! -f "$libs/.complete" ]; then
    command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }
    command -v mvn >/dev/null || { apt-get update -qq && apt-get install -y -qq maven >/dev/null; }
    log "fetching Apache Kafka $HALTLESS_KAFKA_VERSION from Maven Central"
    mvn -q -B -f "$root/compose/kafka/pom.xml" -Dkafka.version="$HALTLESS_KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs"
    touch "$libs/.complete"
  fi
}

java_cp() { java -Xmx256m -cp "$libs/*" -Dlog4j2.configurationFile="$root/compose/kafka/log4j2.properties" "$@"; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

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
CONF
  if [ ! -f "$home/data/meta.properties" ]; then
    local id; id=$(java_cp kafka.tools.StorageTool random-uuid)
    java_cp kafka.tools.StorageTool format -t "$id" -c "$home/server.properties" >/dev/null
  fi
}

start() {
  install
  if running; then return 0; fi
  configure
  log "starting Kafka $HALTLESS_KAFKA_VERSION ($instance) on 127.0.0.1:$HALTLESS_KAFKA_PORT"
  : >"$logfile"
  nohup java -Xms256m -Xmx${KAFKA_HEAP:-768m} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$root/compose/kafka/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$home/server.properties" >>"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 240); do
    if grep -q "Kafka Server started" "$logfile" 2>/dev/null; then return 0; fi
    running || { log "Kafka exited; see $logfile"; tail -n 20 "$logfile" >&2; return 1; }
    sleep 0.5
  done
  log "Kafka did not start within 120 s; see $logfile"
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
  if running; then echo "kafka     running  $HALTLESS_KAFKA_BROKERS ($HALTLESS_KAFKA_VERSION, KRaft)"; else echo "kafka     stopped"; fi
}

"${1:-status}"
