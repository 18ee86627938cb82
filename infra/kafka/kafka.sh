#!/usr/bin/env bash
# Runs the real Apache Kafka broker locally, from jars resolved out of Maven Central, in KRaft mode:
# one combined broker+controller node ("single", 127.0.0.1:9092) or a 3-node cluster ("cluster",
# 127.0.0.1:19092-19094, RF 3, min ISR 2). Every command is idempotent and waits on readiness.
#
#   kafka.sh fetch                      resolve the jars into the cache (outside the repo)
#   kafka.sh start [single|cluster]     start and wait until every node answers metadata
#   kafka.sh stop [single|cluster|all]  stop (SIGTERM, then SIGKILL after a deadline)
#   kafka.sh status                     per node: running or not; exit 3 when nothing runs
#   kafka.sh bootstrap [single|cluster] print the bootstrap server list
#   kafka.sh node-stop N [--kill]       stop one cluster node (SIGKILL with --kill)
#   kafka.sh node-start N               restart one cluster node and wait for 3 brokers
#   kafka.sh wipe [single|cluster]      stop and delete that topology's data
#   kafka.sh check-pins                 fail when compose's image differs from kafka.env
#
# KAFKA_PORT_OFFSET shifts every port (a second broker beside the usual one, as the fault suite
# runs). KAFKA_CLIENT_LISTENERS="NAME:LISTEN:ADVERTISED,…" adds client listeners that advertise
# another port — a TCP fault proxy in front of the broker, so that clients cannot bypass it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=kafka.env
source "$here/kafka.env"
cache="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}/kafka-$KAFKA_VERSION"
libs="$cache/libs"
state="${ORDERFLOW_STATE:-$root/.run}"
ready_timeout="${KAFKA_READY_TIMEOUT:-120}"

die() { echo "kafka: $*" >&2; exit 1; }

# --- topology -------------------------------------------------------------------------------------

nodes_of() { if [[ $1 == single ]]; then echo 1; else echo 1 2 3; fi; }
node_dir() { if [[ $1 == single ]]; then echo "$state/kafka-single"; else echo "$state/kafka-cluster/node-$2"; fi; }
port_offset="${KAFKA_PORT_OFFSET:-0}"
broker_port() { if [[ $1 == single ]]; then echo $((9092 + port_offset)); else echo $((19091 + port_offset + $2)); fi; }
controller_port() { if [[ $1 == single ]]; then echo $((9093 + port_offset)); else echo $((19191 + port_offset + $2)); fi; }
bootstrap() {
  local topo=$1 list=() n
  for n in $(nodes_of "$topo"); do list+=("127.0.0.1:$(broker_port "$topo" "$n")"); done
  (IFS=,; echo "${list[*]}")
}
voters() {
  local topo=$1 list=() n
  for n in $(nodes_of "$topo"); do list+=("$n@127.0.0.1:$(controller_port "$topo" "$n")"); done
  (IFS=,; echo "${list[*]}")
}
check_topology() { [[ $1 == single || $1 == cluster ]] || die "unknown topology '$1' (single or cluster)"; }

# --- jars -----------------------------------------------------------------------------------------

fetch() {
  [[ -f "$cache/.complete" ]] && return 0
  command -v java >/dev/null || die "java not found: install a JDK/JRE 17 (apt-get install -y openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn not found: apt-get install -y maven"
  echo "kafka: resolving Apache Kafka $KAFKA_VERSION from Maven Central into $cache"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  ls "$libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "resolution finished without the kafka jar"
  touch "$cache/.complete"
}

# --- one node -------------------------------------------------------------------------------------

pid_of() { local f="$1/kafka.pid"; [[ -f $f ]] && cat "$f" || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

write_config() {
  local topo=$1 n=$2 dir=$3 rf=1 isr=1 extra name listen advertised
  local listeners advertised_listeners protocols
  [[ $topo == cluster ]] && rf=3 isr=2
  mkdir -p "$dir/data" "$dir/logs"
  listeners="PLAINTEXT://127.0.0.1:$(broker_port "$topo" "$n"),CONTROLLER://127.0.0.1:$(controller_port "$topo" "$n")"
  advertised_listeners="PLAINTEXT://127.0.0.1:$(broker_port "$topo" "$n")"
  protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n ${KAFKA_CLIENT_LISTENERS:-} ]]; then
    [[ $topo == single ]] || die "KAFKA_CLIENT_LISTENERS is for the single node"
    IFS=, read -ra extra <<<"$KAFKA_CLIENT_LISTENERS"
    for entry in "${extra[@]}"; do
      IFS=: read -r name listen advertised <<<"$entry"
      listeners+=",$name://127.0.0.1:$listen"
      advertised_listeners+=",$name://127.0.0.1:$advertised"
      protocols+=",$name:PLAINTEXT"
    done
  fi
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters "$topo")
listeners=$listeners
advertised.listeners=$advertised_listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
PROPS
  cat >"$dir/log4j2.properties" <<LOG
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
LOG
}

format_storage() {
  local topo=$1 dir=$2 id_file
  [[ -f "$dir/data/meta.properties" ]] && return 0
  id_file="$(dirname "$dir")/cluster.id"
  [[ $topo == single ]] && id_file="$dir/cluster.id"
  if [[ ! -s $id_file ]]; then
    java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$id_file"
  fi
  java -cp "$libs/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool format \
    -t "$(cat "$id_file")" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 ||
    { cat "$dir/logs/format.log" >&2; die "formatting $dir failed"; }
}

launch_node() {
  local topo=$1 n=$2 dir heap
  dir=$(node_dir "$topo" "$n")
  if alive "$dir"; then return 0; fi
  write_config "$topo" "$n" "$dir"
  format_storage "$topo" "$dir"
  heap="-Xms256m -Xmx768m"
  [[ $topo == cluster ]] && heap="-Xms256m -Xmx512m"
  # shellcheck disable=SC2086
  nohup java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
}

# How many brokers the cluster reports; 0 while nothing answers (kcat fails, which is expected then).
brokers_seen() {
  { kcat -b "$1" -L -m 3 2>/dev/null || true; } | sed -nE 's/^ *([0-9]+) brokers:.*/\1/p' | head -n 1
}

wait_ready() {
  local topo=$1 want n dir seen deadline=$((SECONDS + ready_timeout))
  want=$(nodes_of "$topo" | wc -w)
  while :; do
    for n in $(nodes_of "$topo"); do
      dir=$(node_dir "$topo" "$n")
      if ! alive "$dir"; then
        echo "kafka: node $n ($topo) exited; last lines of $dir/logs/server.log:" >&2
        tail -n 40 "$dir/logs/server.log" "$dir/stdout.log" >&2 2>/dev/null || true
        exit 1
      fi
    done
    seen=$(brokers_seen "$(bootstrap "$topo")")
    [[ ${seen:-0} -ge $want ]] && return 0
    ((SECONDS < deadline)) || die "$topo not ready after ${ready_timeout}s (saw ${seen:-0}/$want brokers); logs in $(dirname "$(node_dir "$topo" 1)")"
    sleep 0.5
  done
}

stop_dirs() {
  local dirs=("$@") dir pid deadline=$((SECONDS + 30)) waiting
  for dir in "${dirs[@]}"; do alive "$dir" && kill -TERM "$(pid_of "$dir")" 2>/dev/null || true; done
  while :; do
    waiting=0
    for dir in "${dirs[@]}"; do alive "$dir" && waiting=1; done
    ((waiting == 0)) && break
    if ((SECONDS >= deadline)); then
      for dir in "${dirs[@]}"; do alive "$dir" && kill -KILL "$(pid_of "$dir")" 2>/dev/null || true; done
      sleep 0.2
      break
    fi
    sleep 0.2
  done
  for dir in "${dirs[@]}"; do rm -f "$dir/kafka.pid"; done
}

topology_dirs() {
  local topo=$1 n
  for n in $(nodes_of "$topo"); do node_dir "$topo" "$n"; done
}

# --- commands -------------------------------------------------------------------------------------

cmd_start() {
  local topo=${1:-single} n running=1
  check_topology "$topo"
  command -v kcat >/dev/null || die "kcat not found: apt-get install -y kcat"
  for n in $(nodes_of "$topo"); do alive "$(node_dir "$topo" "$n")" || running=0; done
  if ((running)) && [[ $(brokers_seen "$(bootstrap "$topo")") -ge $(nodes_of "$topo" | wc -w) ]]; then
    echo "kafka: $topo already running at $(bootstrap "$topo")"
    return 0
  fi
  fetch
  for n in $(nodes_of "$topo"); do launch_node "$topo" "$n"; done
  wait_ready "$topo"
  local logs="$(node_dir "$topo" 1)/logs/server.log"
  [[ $topo == cluster ]] && logs="$state/kafka-cluster/node-N/logs/server.log"
  echo "kafka: $topo ready at $(bootstrap "$topo") (logs: $logs)"
}

cmd_stop() {
  local which=${1:-all} dirs=()
  case $which in
    single | cluster) mapfile -t dirs < <(topology_dirs "$which") ;;
    all) mapfile -t dirs < <(topology_dirs single; topology_dirs cluster) ;;
    *) die "unknown topology '$which' (single, cluster or all)" ;;
  esac
  stop_dirs "${dirs[@]}"
  echo "kafka: stopped $which"
}

cmd_status() {
  local topo n dir any=0
  for topo in single cluster; do
    for n in $(nodes_of "$topo"); do
      dir=$(node_dir "$topo" "$n")
      [[ -f "$dir/kafka.pid" ]] || continue
      if alive "$dir"; then
        any=1
        echo "kafka $topo node $n: running (pid $(pid_of "$dir"), 127.0.0.1:$(broker_port "$topo" "$n"))"
      else
        echo "kafka $topo node $n: NOT running (stale pid file; logs in $dir/logs)"
      fi
    done
  done
  ((any)) || { echo "kafka: not running"; exit 3; }
}

cmd_node_stop() {
  local n=${1:?node number} dir
  [[ $n =~ ^[123]$ ]] || die "node must be 1, 2 or 3"
  dir=$(node_dir cluster "$n")
  alive "$dir" || { echo "kafka: cluster node $n is not running"; return 0; }
  if [[ ${2:-} == --kill ]]; then
    kill -KILL "$(pid_of "$dir")"
    while alive "$dir"; do sleep 0.1; done
    rm -f "$dir/kafka.pid"
    echo "kafka: cluster node $n killed"
  else
    stop_dirs "$dir"
    echo "kafka: cluster node $n stopped"
  fi
}

cmd_node_start() {
  local n=${1:?node number}
  [[ $n =~ ^[123]$ ]] || die "node must be 1, 2 or 3"
  fetch
  launch_node cluster "$n"
  wait_ready cluster
  echo "kafka: cluster node $n is back; 3 brokers answer"
}

cmd_wipe() {
  local topo=${1:-single}
  check_topology "$topo"
  cmd_stop "$topo" >/dev/null
  if [[ $topo == single ]]; then rm -rf "$state/kafka-single"; else rm -rf "$state/kafka-cluster"; fi
  echo "kafka: wiped $topo"
}

cmd_check_pins() {
  local compose="$root/infra/docker-compose.yml" bad
  bad=$(grep -oE 'apache/kafka:[^" ]+' "$compose" | grep -v "apache/kafka:$KAFKA_VERSION$" || true)
  [[ -z $bad ]] || die "infra/docker-compose.yml uses $bad but kafka.env pins $KAFKA_VERSION"
  echo "kafka: compose image matches kafka.env ($KAFKA_VERSION)"
}

case ${1:-} in
  fetch) fetch ;;
  start) cmd_start "${2:-single}" ;;
  stop) cmd_stop "${2:-all}" ;;
  status) cmd_status ;;
  bootstrap) t=${2:-single}; check_topology "$t"; bootstrap "$t" ;;
  node-stop) cmd_node_stop "${2:-}" "${3:-}" ;;
  node-start) cmd_node_start "${2:-}" ;;
  wipe) cmd_wipe "${2:-single}" ;;
  check-pins) cmd_check_pins ;;
  *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [[ -z ${1:-} ]] || exit 2 ;;
esac
