#!/usr/bin/env bash
# Real services for Gatehouse's tests, without Docker (see docs and ../shared/guide/services.md).
#
#   scripts/services.sh start    make sure Redis, NATS+JetStream and Kafka are up; install the
#                                nginx, haproxy, prometheus and chromium packages if missing
#   scripts/services.sh stop     stop what this script started (and nothing else)
#   scripts/services.sh status   one line per service
#
# Idempotent: `start` leaves running services alone. Quiet on success (one line per service),
# loud on failure (what failed, and the tail of the log that says why), exit status non-zero.
#
# Environment:
#   GATEHOUSE_KAFKA_READY_TIMEOUT  seconds to wait for the Kafka broker (default 180)
#   GATEHOUSE_SERVICES_DIR         state directory (default <repo>/.services, gitignored)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${GATEHOUSE_SERVICES_DIR:-$ROOT/.services}"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_SRC="$ROOT/scripts/kafka"
KAFKA_READY_TIMEOUT="${GATEHOUSE_KAFKA_READY_TIMEOUT:-180}"
REDIS_DIR="$STATE/redis"
NATS_DIR="$STATE/nats"
NATS_STORE=/var/lib/nats-server
# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

die() {
  echo "services.sh: $*" >&2
  exit 1
}

# tcp_open HOST PORT: true when something accepts a TCP connection there within a second.
tcp_open() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# pid_is PIDFILE PATTERN: prints the pid when the file names a live process whose command line
# contains PATTERN (a pid file left behind after a reboot may name some unrelated process).
pid_is() {
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds or time runs out.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo -n "$@"
  else
    die "need root to run: $* (no sudo available)"
  fi
}

# ---------------------------------------------------------------- Redis

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

start_redis() {
  if redis_up; then
    echo "redis: up at 127.0.0.1:6379"
    return
  fi
  command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install -y redis-server)"
  mkdir -p "$REDIS_DIR"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" >/dev/null ||
    die "redis-server failed to start; see $REDIS_DIR/redis.log"
  if ! wait_until 10 redis_up; then
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "redis did not answer PING on 127.0.0.1:6379 within 10 s"
  fi
  echo "redis: started at 127.0.0.1:6379"
}

# ---------------------------------------------------------------- NATS

# Prints the server's INFO line (NATS greets every client with it).
nats_info() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -n1 <&3' 2>/dev/null; }
nats_up() { nats_info | grep -q '^INFO '; }

start_nats() {
  local info
  if info="$(nats_info)" && [[ "$info" == INFO* ]]; then
    [[ "$info" == *'"jetstream":true'* ]] ||
      die "a NATS server on 127.0.0.1:4222 runs without JetStream; restart it with -js"
    echo "nats: up at 127.0.0.1:4222 (jetstream)"
    return
  fi
  command -v nats-server >/dev/null || die "nats-server is not installed (apt-get install -y nats-server)"
  mkdir -p "$NATS_DIR"
  as_root mkdir -p "$NATS_STORE"
  start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$NATS_DIR/nats.pid" \
    --exec "$(command -v nats-server)" -- -a 127.0.0.1 -p 4222 -js -sd "$NATS_STORE" -l "$NATS_DIR/nats.log" ||
    die "nats-server failed to start; see $NATS_DIR/nats.log"
  if ! wait_until 10 nats_up; then
    tail -n 20 "$NATS_DIR/nats.log" >&2 || true
    die "nats did not greet on 127.0.0.1:4222 within 10 s"
  fi
  echo "nats: started at 127.0.0.1:4222 (jetstream)"
}

# ---------------------------------------------------------------- Kafka

kafka_ready_once() { node "$KAFKA_SRC/ready.mjs" --broker 127.0.0.1:9092 --once >/dev/null 2>&1; }

# Fetches the broker's classpath from Maven Central (cached in ~/.m2) when the pom changed.
fetch_kafka() {
  local stamp="$KAFKA_LIB/.pom.sha256" want
  want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return
  command -v java >/dev/null || die "java is not installed (apt-get install -y openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn is not installed (apt-get install -y maven)"
  rm -rf "$KAFKA_LIB"
  mkdir -p "$KAFKA_DIR"
  local try
  for try in 1 2 3; do
    # Retried: one dropped connection to Maven Central should not fail a CI run.
    mvn -B -q -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIB" >"$KAFKA_DIR/maven.log" 2>&1 && break
    if ((try == 3)); then
      tail -n 30 "$KAFKA_DIR/maven.log" >&2
      die "fetching Kafka from Maven Central failed 3 times (full output: $KAFKA_DIR/maven.log)"
    fi
    sleep $((try * 5))
  done
  echo "$want" >"$stamp"
}

# Writes the config and formats the KRaft storage once (a formatted directory is left alone).
prepare_kafka() {
  mkdir -p "$KAFKA_DATA"
  sed "s#@DATA_DIR@#$KAFKA_DATA#" "$KAFKA_SRC/server.properties.template" >"$KAFKA_CONF"
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return
  local uuid
  uuid="$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid 2>"$KAFKA_DIR/format.log" | tail -n1)" ||
    { tail -n 20 "$KAFKA_DIR/format.log" >&2; die "kafka storage: random-uuid failed"; }
  if ! java -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -cp "$KAFKA_LIB/*" \
    kafka.tools.StorageTool format --cluster-id="$uuid" -c "$KAFKA_CONF" --ignore-formatted >>"$KAFKA_DIR/format.log" 2>&1; then
    tail -n 20 "$KAFKA_DIR/format.log" >&2
    die "kafka storage format failed (full output: $KAFKA_DIR/format.log)"
  fi
}

# Starts the broker in the background; `wait_kafka` waits for it. Split so the package installs
# run while the JVM boots.
launch_kafka() {
  KAFKA_LAUNCHED=""
  local pid
  if pid="$(pid_is "$KAFKA_PID" kafka.Kafka)"; then
    KAFKA_LAUNCHED="$pid"
    return
  fi
  if tcp_open 127.0.0.1 9092; then
    # Someone else's broker (or another engineer's services.sh run in another checkout). The
    # suites that start a private broker still need the classpath in this checkout.
    fetch_kafka
    return
  fi
  tcp_open 127.0.0.1 9093 && die "port 9093 (Kafka controller) is taken by another process"
  fetch_kafka
  prepare_kafka
  rm -f "$KAFKA_PID"
  # setsid: the broker must outlive this shell and must not get its terminal's signals.
  setsid java -Xms128m -Xmx512m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_CONF" >"$KAFKA_LOG" 2>&1 </dev/null &
  echo $! >"$KAFKA_PID"
  KAFKA_LAUNCHED="$!"
  KAFKA_STARTED_NOW=1
}

wait_kafka() {
  local args=(--broker 127.0.0.1:9092 --timeout "$((KAFKA_READY_TIMEOUT * 1000))") out
  [[ -n "$KAFKA_LAUNCHED" ]] && args+=(--pid "$KAFKA_LAUNCHED")
  if ! out="$(node "$KAFKA_SRC/ready.mjs" "${args[@]}" 2>&1)"; then
    echo "$out" >&2
    if [[ -n "$KAFKA_LAUNCHED" && -f "$KAFKA_LOG" ]]; then
      echo "---- last lines of $KAFKA_LOG ----" >&2
      tail -n 40 "$KAFKA_LOG" >&2
    fi
    die "kafka is not ready on 127.0.0.1:9092"
  fi
  if [[ -n "${KAFKA_STARTED_NOW:-}" ]]; then
    echo "kafka: started at 127.0.0.1:9092 (pid $KAFKA_LAUNCHED, log $KAFKA_LOG)"
  elif [[ -n "$KAFKA_LAUNCHED" ]]; then
    echo "kafka: up at 127.0.0.1:9092 (pid $KAFKA_LAUNCHED)"
  else
    echo "kafka: up at 127.0.0.1:9092 (not started by this script)"
  fi
}

# ---------------------------------------------------------------- Debian packages (not started)

# binary:package pairs; tests start their own instances of these.
TOOLS=(nginx:nginx haproxy:haproxy prometheus:prometheus promtool:prometheus chromium:chromium)

install_tools() {
  local missing=() pair
  for pair in "${TOOLS[@]}"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair##*:}")
  done
  if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    mkdir -p "$STATE"
    # Lock timeout: another apt run (a background install) may hold the dpkg lock; wait for it.
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update \
      >"$STATE/apt.log" 2>&1 ||
      ! as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
        --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; then
      tail -n 30 "$STATE/apt.log" >&2
      die "apt-get install ${missing[*]} failed (full output: $STATE/apt.log)"
    fi
  fi
  for pair in "${TOOLS[@]}"; do
    [[ "${pair%%:*}" == promtool ]] && continue
    command -v "${pair%%:*}" >/dev/null || die "${pair%%:*} still missing after apt-get install"
    if [[ " ${missing[*]-} " == *" ${pair##*:} "* ]]; then
      echo "${pair%%:*}: installed"
    else
      echo "${pair%%:*}: present"
    fi
  done
}

# ---------------------------------------------------------------- stop / status

# stop_pidfile NAME PIDFILE PATTERN: TERM, wait up to 30 s, then KILL; only a pid we recorded.
stop_pidfile() {
  local pid
  if ! pid="$(pid_is "$2" "$3")"; then
    rm -f "$2"
    echo "$1: not started by this script"
    return
  fi
  kill -TERM "$pid"
  if ! wait_until 30 bash -c "! kill -0 $pid 2>/dev/null"; then
    echo "$1: pid $pid ignored SIGTERM for 30 s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$2"
  echo "$1: stopped (pid $pid)"
}

status() {
  local pid info
  if redis_up; then echo "redis: up at 127.0.0.1:6379"; else echo "redis: down"; fi
  if info="$(nats_info)" && [[ "$info" == INFO* ]]; then
    if [[ "$info" == *'"jetstream":true'* ]]; then echo "nats: up at 127.0.0.1:4222 (jetstream)"; else echo "nats: up at 127.0.0.1:4222 (NO jetstream)"; fi
  else
    echo "nats: down"
  fi
  if pid="$(pid_is "$KAFKA_PID" kafka.Kafka)"; then
    if kafka_ready_once; then echo "kafka: up at 127.0.0.1:9092 (pid $pid)"; else echo "kafka: starting or unhealthy (pid $pid, log $KAFKA_LOG)"; fi
  elif kafka_ready_once; then
    echo "kafka: up at 127.0.0.1:9092 (not started by this script)"
  else
    echo "kafka: down"
  fi
  local pair
  for pair in "${TOOLS[@]}"; do
    [[ "${pair%%:*}" == promtool ]] && continue
    if command -v "${pair%%:*}" >/dev/null; then echo "${pair%%:*}: installed"; else echo "${pair%%:*}: missing"; fi
  done
}

case "${1:-}" in
  start)
    command -v node >/dev/null || die "node is not on PATH"
    [[ -d "$ROOT/node_modules/@platformatic/kafka" ]] || die "node_modules is missing; run npm ci first"
    start_redis
    start_nats
    launch_kafka
    install_tools
    wait_kafka
    ;;
  stop)
    stop_pidfile kafka "$KAFKA_PID" kafka.Kafka
    [[ -f "$NATS_DIR/nats.pid" ]] && stop_pidfile nats "$NATS_DIR/nats.pid" nats-server
    [[ -f "$REDIS_DIR/redis.pid" ]] && stop_pidfile redis "$REDIS_DIR/redis.pid" redis-server
    true
    ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
