#!/usr/bin/env bash
# Native (no Docker) Apache Kafka + Elasticsearch for local development and CI.
#
#   deploy/local/services.sh fetch                      download + cache both distributions
#   deploy/local/services.sh start  [kafka|elasticsearch|all]   start, wait until ready
#   deploy/local/services.sh stop   [kafka|elasticsearch|all]   SIGTERM, wait, SIGKILL
#   deploy/local/services.sh status [kafka|elasticsearch|all]   exit 0 only if all running+healthy
#   deploy/local/services.sh logs   [kafka|elasticsearch|all] [-f]
#   deploy/local/services.sh reset                      stop all, wipe data and logs
#   deploy/local/services.sh env                        print connection settings (KEY=value)
#   deploy/local/services.sh kafka-topics ARGS...       run Kafka's TopicCommand against the broker
#
# Environment:
#   NEWSWATCH_LOCAL_CACHE_DIR   downloads + unpacked distributions (default ~/.cache/newswatch)
#   NEWSWATCH_LOCAL_RUN_DIR     data, logs, pid files (default <repo>/.run)
#   NEWSWATCH_LOCAL_KAFKA_PORT (9092)  NEWSWATCH_LOCAL_KAFKA_CONTROLLER_PORT (9093)
#   NEWSWATCH_LOCAL_ES_PORT (9200)     NEWSWATCH_LOCAL_ES_TRANSPORT_PORT (9300)
#   NEWSWATCH_LOCAL_ES_USER     system user that runs Elasticsearch when started as root (newswatch-es)
#   NEWSWATCH_LOCAL_ES_JAVA_HOME / ES_JAVA_HOME   JDK >= 21 for Elasticsearch (else searched in /usr/lib/jvm)
#   NEWSWATCH_LOCAL_KAFKA_JAVA_HOME / JAVA_HOME   JDK >= 17 for Kafka (else `java` on PATH, else /usr/lib/jvm)
#   NEWSWATCH_LOCAL_KAFKA_START_TIMEOUT (120)  NEWSWATCH_LOCAL_ES_START_TIMEOUT (180)  NEWSWATCH_LOCAL_STOP_TIMEOUT (60) seconds
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_DIR=$(dirname "$SCRIPT_DIR")
REPO_DIR=$(dirname "$DEPLOY_DIR")

# shellcheck source=../versions.env
source "$DEPLOY_DIR/versions.env"
: "${KAFKA_VERSION:?KAFKA_VERSION missing in deploy/versions.env}"
: "${ELASTICSEARCH_VERSION:?ELASTICSEARCH_VERSION missing in deploy/versions.env}"

if [[ -z "${HOME:-}" ]]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); export HOME; fi
CACHE_DIR=$(realpath -m "${NEWSWATCH_LOCAL_CACHE_DIR:-$HOME/.cache/newswatch}")
RUN_DIR=$(realpath -m "${NEWSWATCH_LOCAL_RUN_DIR:-$REPO_DIR/.run}")
LOG_DIR=$RUN_DIR/logs

KAFKA_PORT=${NEWSWATCH_LOCAL_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${NEWSWATCH_LOCAL_KAFKA_CONTROLLER_PORT:-9093}
ES_PORT=${NEWSWATCH_LOCAL_ES_PORT:-9200}
ES_TRANSPORT_PORT=${NEWSWATCH_LOCAL_ES_TRANSPORT_PORT:-9300}
ES_USER=${NEWSWATCH_LOCAL_ES_USER:-newswatch-es}
KAFKA_START_TIMEOUT=${NEWSWATCH_LOCAL_KAFKA_START_TIMEOUT:-120}
ES_START_TIMEOUT=${NEWSWATCH_LOCAL_ES_START_TIMEOUT:-180}
STOP_TIMEOUT=${NEWSWATCH_LOCAL_STOP_TIMEOUT:-60}

MVN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
M2_REPO=$CACHE_DIR/m2

KAFKA_DIST=$CACHE_DIR/kafka-$KAFKA_VERSION          # libs/ with every jar of the broker + tools
KAFKA_RUN=$RUN_DIR/kafka                           # server.properties, cluster.id, data/
KAFKA_LOG=$LOG_DIR/kafka.log
KAFKA_PID=$RUN_DIR/kafka.pid

ES_DIST=$CACHE_DIR/elasticsearch-$ELASTICSEARCH_VERSION   # unpacked integ-test-zip (shared, read-only use)
ES_LOG=$LOG_DIR/elasticsearch.log                 # console output of the node
ES_PID=$RUN_DIR/elasticsearch.pid                 # pid of the Elasticsearch server JVM
ES_LAUNCHER_PID=$RUN_DIR/elasticsearch-launcher.pid  # pid of runuser / the ES CLI launcher

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

# ---------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  # apt_install PKG... (root only); returns non-zero on failure
  is_root || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_cmd() {
  # need_cmd CMD PKG: install PKG with apt when CMD is missing; die if impossible
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  apt_install "$pkg" || true
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found and could not be installed (apt-get install $pkg)"
}

ensure_kcat() {
  # kcat is the readiness probe for Kafka and the independent client used by tests.
  command -v kcat >/dev/null 2>&1 && return 0
  apt_install kcat || true
  command -v kcat >/dev/null 2>&1 && return 0
  log "WARNING: kcat is missing and could not be installed; Kafka readiness falls back to port + log checks"
  return 1
}

java_major() {
  # java_major JAVA_BINARY -> prints the feature version (8, 17, 21, 25, ...)
  local java=$1 home v=""
  [[ -x $java ]] || return 1
  home=$(dirname "$(dirname "$(readlink -f "$java")")")
  if [[ -f $home/release ]]; then
    v=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")
  fi
  if [[ -z $v ]]; then
    v=$("$java" -XshowSettings:properties -version 2>&1 | awk -F'= *' '/java\.specification\.version/ {print $2; exit}')
  fi
  [[ -n $v ]] || return 1
  v=${v#1.}
  printf '%s\n' "${v%%[.+_-]*}"
}

find_java() {
  # find_java MIN_MAJOR CANDIDATE_BINARY... -> first candidate, then /usr/lib/jvm/* (newest first)
  local min=$1; shift
  local c m
  local -a cands=("$@")
  local jvms
  jvms=$(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -V -r || true)
  for c in $jvms; do cands+=("${c%/}/bin/java"); done
  for c in "${cands[@]}"; do
    [[ -n $c && -x $c ]] || continue
    m=$(java_major "$c" 2>/dev/null) || continue
    if [[ $m =~ ^[0-9]+$ ]] && (( m >= min )); then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

kafka_java() {
  local -a c=()
  [[ -n ${NEWSWATCH_LOCAL_KAFKA_JAVA_HOME:-} ]] && c+=("$NEWSWATCH_LOCAL_KAFKA_JAVA_HOME/bin/java")
  [[ -n ${JAVA_HOME:-} ]] && c+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && c+=("$(command -v java)")
  find_java 17 "${c[@]}" || die "Kafka $KAFKA_VERSION needs Java >= 17; none found (JAVA_HOME, PATH, /usr/lib/jvm). Install one, e.g. apt-get install -y openjdk-17-jre-headless"
}

es_java_home() {
  local -a c=()
  [[ -n ${NEWSWATCH_LOCAL_ES_JAVA_HOME:-} ]] && c+=("$NEWSWATCH_LOCAL_ES_JAVA_HOME/bin/java")
  [[ -n ${ES_JAVA_HOME:-} ]] && c+=("$ES_JAVA_HOME/bin/java")
  c+=(/usr/lib/jvm/temurin-25-jdk-amd64/bin/java)
  local j
  j=$(find_java 21 "${c[@]}") || die "Elasticsearch $ELASTICSEARCH_VERSION needs Java >= 21 (its integ-test-zip bundles no JDK) and none was found under /usr/lib/jvm. Install a JDK >= 21 there, or set NEWSWATCH_LOCAL_ES_JAVA_HOME."
  dirname "$(dirname "$(readlink -f "$j")")"
}

# ---------------------------------------------------------------------------
# process helpers
# ---------------------------------------------------------------------------
pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

read_pid() {
  # read_pid PIDFILE -> pid if the file exists and the process is alive
  local f=$1 p
  [[ -f $f ]] || return 1
  p=$(tr -dc '0-9' <"$f")
  pid_alive "$p" || return 1
  printf '%s\n' "$p"
}

pid_matches() {
  # pid_matches PID PATTERN: the process's command line contains PATTERN (guards against pid reuse)
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

terminate() {
  # terminate NAME PID...: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL
  local name=$1; shift
  local -a pids=()
  local p
  for p in "$@"; do pid_alive "$p" && pids+=("$p"); done
  [[ ${#pids[@]} -gt 0 ]] || return 0
  log "stopping $name (pid ${pids[*]})"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT)) alive
  while :; do
    alive=()
    for p in "${pids[@]}"; do pid_alive "$p" && alive+=("$p"); done
    [[ ${#alive[@]} -eq 0 ]] && break
    if (( SECONDS >= deadline )); then
      log "WARNING: $name did not exit within ${STOP_TIMEOUT}s, sending SIGKILL to ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
}

with_lock() {
  # serialise start/stop/reset of concurrent invocations on the same run dir
  # (fd 9 is closed in every daemon we start, so the lock never outlives this script)
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/services.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w "${NEWSWATCH_LOCAL_LOCK_TIMEOUT:-400}" 9 \
      || die "another services.sh start/stop on $RUN_DIR has been running for ${NEWSWATCH_LOCAL_LOCK_TIMEOUT:-400}s (lock $RUN_DIR/services.lock)"
  fi
}

# ---------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------
mvn_run() {
  # quiet on success; the whole Maven output on failure
  need_cmd mvn maven
  local out rc=0
  out=$(mktemp)
  mvn -B -ntp -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" "$@" >"$out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then sed 's/\x1b\[[0-9;]*m//g' "$out" | tail -n 60 >&2; fi
  rm -f "$out"
  return "$rc"
}

fetch_kafka() {
  [[ -f $KAFKA_DIST/.complete ]] && return 0
  log "fetching Kafka $KAFKA_VERSION from Maven Central into $KAFKA_DIST"
  local stage=$KAFKA_DIST.partial
  rm -rf "$stage"; mkdir -p "$stage/libs"
  cp "$SCRIPT_DIR/kafka/pom.xml" "$stage/pom.xml"
  (cd "$stage" && mvn_run -f pom.xml "$MVN_DEP_PLUGIN:copy-dependencies" \
      -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$stage/libs") \
    || die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see output above)"
  # log4j2 -> slf4j binding, matched to what Kafka ships: slf4j 1.x needs log4j-slf4j-impl,
  # slf4j 2.x needs log4j-slf4j2-impl. Without it the broker logs nothing at all.
  local core slf4j log4j_ver binding
  core=$(ls "$stage/libs"/log4j-core-*.jar 2>/dev/null | head -n1) || true
  slf4j=$(ls "$stage/libs"/slf4j-api-*.jar 2>/dev/null | head -n1) || true
  [[ -n $core && -n $slf4j ]] || die "unexpected Kafka dependency set: no log4j-core or slf4j-api in $stage/libs"
  log4j_ver=$(basename "$core" .jar); log4j_ver=${log4j_ver#log4j-core-}
  case $(basename "$slf4j") in
    slf4j-api-1.*) binding=log4j-slf4j-impl ;;
    *) binding=log4j-slf4j2-impl ;;
  esac
  log "adding org.apache.logging.log4j:$binding:$log4j_ver (Kafka ships $(basename "$slf4j" .jar), log4j-core $log4j_ver)"
  (cd "$stage" && mvn_run "$MVN_DEP_PLUGIN:copy" \
      -Dartifact="org.apache.logging.log4j:$binding:$log4j_ver:jar" -DoutputDirectory="$stage/libs") \
    || die "mvn could not resolve org.apache.logging.log4j:$binding:$log4j_ver"
  rm -f "$stage/pom.xml"
  printf 'kafka %s\nbinding %s:%s\n' "$KAFKA_VERSION" "$binding" "$log4j_ver" >"$stage/.complete"
  rm -rf "$KAFKA_DIST"
  mv "$stage" "$KAFKA_DIST"
  chmod -R a+rX "$KAFKA_DIST"
}

fetch_es() {
  [[ -f $ES_DIST/.complete ]] && return 0
  need_cmd unzip unzip
  log "fetching Elasticsearch $ELASTICSEARCH_VERSION (integ-test-zip) from Maven Central into $ES_DIST"
  local dl=$CACHE_DIR/downloads stage=$ES_DIST.partial
  local zip=$dl/elasticsearch-$ELASTICSEARCH_VERSION.zip
  mkdir -p "$dl"
  if [[ ! -s $zip ]]; then
    (cd "$dl" && mvn_run "$MVN_DEP_PLUGIN:copy" \
        -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ELASTICSEARCH_VERSION:zip" \
        -DoutputDirectory="$dl") \
      || die "mvn could not resolve org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ELASTICSEARCH_VERSION:zip (not every 9.x patch release is published there)"
  fi
  rm -rf "$stage"; mkdir -p "$stage"
  unzip -q "$zip" -d "$stage"
  local top
  top=$(find "$stage" -mindepth 1 -maxdepth 1 -type d | head -n1)
  [[ -x $top/bin/elasticsearch ]] || die "unexpected layout of $zip (no bin/elasticsearch)"
  rm -rf "$ES_DIST"
  mv "$top" "$ES_DIST"
  rm -rf "$stage"
  chmod -R a+rX,go-w "$ES_DIST"
  # the zip is unpacked; the copy in m2 stays as the cache of record
  rm -f "$zip"
  printf 'elasticsearch %s\n' "$ELASTICSEARCH_VERSION" >"$ES_DIST/.complete"
}

cmd_fetch() {
  mkdir -p "$CACHE_DIR"
  fetch_kafka
  fetch_es
  ensure_kcat || true
  log "cache ready: $KAFKA_DIST, $ES_DIST"
}

# ---------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------
kafka_pid() { local p; p=$(read_pid "$KAFKA_PID") && pid_matches "$p" kafka.Kafka && printf '%s\n' "$p"; }

kafka_tool() {
  # kafka_tool MAIN_CLASS ARGS... (log4j warnings only, to stderr)
  local java; java=$(kafka_java)
  "$java" -Xmx256m -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/tools-log4j2.properties" \
    -cp "$KAFKA_DIST/libs/*" "$@"
}

kafka_ready() {
  # broker answers a metadata request and lists itself
  if command -v kcat >/dev/null 2>&1; then
    local md
    md=$(kcat -b "127.0.0.1:$KAFKA_PORT" -L -m 3 2>/dev/null) || return 1
    grep -qE '^ *1 brokers:' <<<"$md" && grep -q "broker 1 at 127.0.0.1:$KAFKA_PORT" <<<"$md"
  else
    port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null
  fi
}

render() {
  # render TEMPLATE OUT KEY=VALUE...  (replaces @KEY@)
  local tpl=$1 out=$2; shift 2
  local content kv
  content=$(<"$tpl")
  for kv in "$@"; do content=${content//@${kv%%=*}@/${kv#*=}}; done
  printf '%s\n' "$content" >"$out"
}

start_kafka() {
  local pid
  if pid=$(kafka_pid); then
    if kafka_ready; then log "kafka already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"; return 0; fi
    log "kafka process $pid is running but not answering yet; waiting"
  else
    rm -f "$KAFKA_PID"
    if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
      die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on 127.0.0.1 is already in use by a process not started by this script (pid file $KAFKA_PID); stop it first (docker compose? another checkout's .run?)"
    fi
    fetch_kafka
    local java; java=$(kafka_java)
    mkdir -p "$KAFKA_RUN/data" "$LOG_DIR"
    render "$SCRIPT_DIR/kafka/server.properties.template" "$KAFKA_RUN/server.properties" \
      "KAFKA_PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "DATA_DIR=$KAFKA_RUN/data"
    if [[ ! -s $KAFKA_RUN/cluster.id ]]; then
      kafka_tool kafka.tools.StorageTool random-uuid >"$KAFKA_RUN/cluster.id.tmp"
      mv "$KAFKA_RUN/cluster.id.tmp" "$KAFKA_RUN/cluster.id"
    fi
    local cid; cid=$(tr -d '[:space:]' <"$KAFKA_RUN/cluster.id")
    if [[ ! -f $KAFKA_RUN/data/meta.properties ]]; then   # (saves a JVM start on warm starts)
      {
        printf '\n==== %s: formatting storage (cluster id %s) ====\n' "$(date -Is)" "$cid"
        kafka_tool kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_RUN/server.properties" --ignore-formatted 2>&1
      } >>"$KAFKA_LOG" || die "kafka storage format failed, see $KAFKA_LOG"
    fi
    printf '==== %s: starting Kafka %s (%s) ====\n' "$(date -Is)" "$KAFKA_VERSION" "$java" >>"$KAFKA_LOG"
    # setsid: own session, so a Ctrl-C / SIGHUP of the caller does not hit the broker.
    # The inner shell writes its own pid and execs java, so the pid file is the broker's pid.
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID" \
      "$java" -Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$SCRIPT_DIR/kafka/log4j2.properties" \
      -cp "$KAFKA_DIST/libs/*" kafka.Kafka "$KAFKA_RUN/server.properties" \
      >>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
    local i
    for i in $(seq 50); do [[ -s $KAFKA_PID ]] && break; sleep 0.1; done
    pid=$(tr -dc '0-9' <"$KAFKA_PID" 2>/dev/null) || true
    log "kafka starting (pid ${pid:-?}), log: $KAFKA_LOG"
  fi
  ensure_kcat || true
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  until kafka_ready; do
    if ! pid_alive "$pid"; then
      rm -f "$KAFKA_PID"
      tail -n 30 "$KAFKA_LOG" >&2 || true
      die "kafka exited during startup; full log: $KAFKA_LOG"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 30 "$KAFKA_LOG" >&2 || true
      terminate kafka "$pid"; rm -f "$KAFKA_PID"
      die "kafka not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s; full log: $KAFKA_LOG"
    fi
    sleep 1
  done
  log "kafka ready on 127.0.0.1:$KAFKA_PORT (pid $pid)"
}

stop_kafka() {
  local pid
  if pid=$(kafka_pid); then
    terminate kafka "$pid"
  elif [[ -f $KAFKA_PID ]]; then
    log "kafka not running (removing stale pid file)"
  else
    log "kafka not running"
  fi
  rm -f "$KAFKA_PID"
}

status_kafka() {
  local pid
  if pid=$(kafka_pid); then
    if kafka_ready; then echo "kafka: running (pid $pid), ready on 127.0.0.1:$KAFKA_PORT"; return 0; fi
    echo "kafka: running (pid $pid), NOT answering on 127.0.0.1:$KAFKA_PORT"; return 1
  fi
  echo "kafka: stopped"; return 3
}

# ---------------------------------------------------------------------------
# Elasticsearch
# ---------------------------------------------------------------------------
es_base() {
  # Where the node's writable state lives (config copy, data, logs, tmp). It has to be
  # reachable by the ES user: <run>/elasticsearch if it can traverse <run>, else a
  # per-run-dir directory under /var/tmp (e.g. repo cloned under /root, mode 0700).
  if ! is_root || runuser -u "$ES_USER" -- test -x "$RUN_DIR" 2>/dev/null; then
    printf '%s\n' "$RUN_DIR/elasticsearch"
  else
    printf '/var/tmp/newswatch-es-%s\n' "$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)"
  fi
}

es_home() {
  # The distribution the node runs from: the cache itself if the ES user can read it,
  # else a hard-linked (or copied) mirror under /var/tmp, made once per version.
  if ! is_root || runuser -u "$ES_USER" -- test -r "$ES_DIST/.complete" 2>/dev/null; then
    printf '%s\n' "$ES_DIST"; return 0
  fi
  local mirror
  mirror=/var/tmp/newswatch-es-home-$ELASTICSEARCH_VERSION-$(printf '%s' "$ES_DIST" | sha256sum | cut -c1-8)
  if [[ ! -f $mirror/.complete ]]; then
    log "cache $ES_DIST is not readable by $ES_USER; mirroring the distribution to $mirror"
    rm -rf "$mirror" "$mirror.partial"
    cp -al "$ES_DIST" "$mirror.partial" 2>/dev/null || { rm -rf "$mirror.partial"; cp -a "$ES_DIST" "$mirror.partial"; }
    chown -R root:root "$mirror.partial"; chmod -R a+rX,go-w "$mirror.partial"
    mv "$mirror.partial" "$mirror"
  fi
  printf '%s\n' "$mirror"
}

ensure_es_user() {
  is_root || return 0
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  log "creating system user $ES_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$ES_USER" || id -u "$ES_USER" >/dev/null 2>&1 \
    || die "could not create system user $ES_USER"
}

es_server_pid() {
  local f p base
  base=$(es_base)
  for f in "$ES_PID" "$base/run/elasticsearch.pid"; do
    p=$(read_pid "$f") && pid_matches "$p" org.elasticsearch && { printf '%s\n' "$p"; return 0; }
  done
  return 1
}

es_launcher_pid() { read_pid "$ES_LAUNCHER_PID"; }

es_health() {
  curl -fsS --max-time "${2:-5}" "http://127.0.0.1:$ES_PORT/_cluster/health${1:-}" 2>/dev/null
}

es_ready() {
  local h
  h=$(es_health '?wait_for_status=yellow&timeout=5s' 10) || return 1
  grep -qE '"status":"(green|yellow)"' <<<"$h" && grep -q '"timed_out":false' <<<"$h"
}

start_es() {
  local pid lpid base home
  if pid=$(es_server_pid); then
    if es_ready; then log "elasticsearch already running (pid $pid) on 127.0.0.1:$ES_PORT"; return 0; fi
    log "elasticsearch process $pid is running but not healthy yet; waiting"
    lpid=$(es_launcher_pid) || lpid=""
  elif lpid=$(es_launcher_pid); then
    log "elasticsearch launcher $lpid is still starting; waiting"
    pid=""
  else
    rm -f "$ES_PID" "$ES_LAUNCHER_PID"
    if port_open "$ES_PORT" || port_open "$ES_TRANSPORT_PORT"; then
      die "port $ES_PORT or $ES_TRANSPORT_PORT on 127.0.0.1 is already in use by a process not started by this script (pid file $ES_PID); stop it first (docker compose? another checkout's .run?)"
    fi
    fetch_es
    local java_home; java_home=$(es_java_home)
    need_cmd curl curl
    ensure_es_user
    base=$(es_base); home=$(es_home)
    mkdir -p "$base/config" "$base/data" "$base/logs" "$base/tmp" "$base/run" "$LOG_DIR"
    # per-run copy of the config dir (ES_PATH_CONF); the cached distribution is never written to
    cp -a "$home/config/." "$base/config/"
    render "$SCRIPT_DIR/elasticsearch/elasticsearch.yml.template" "$base/config/elasticsearch.yml" \
      "ES_PORT=$ES_PORT" "ES_TRANSPORT_PORT=$ES_TRANSPORT_PORT" \
      "ES_DATA_DIR=$base/data" "ES_LOGS_DIR=$base/logs"
    # settings that only exist when the module is in the distribution (not in integ-test-zip)
    [[ -d $home/modules/x-pack-ml ]] && echo 'xpack.ml.enabled: false' >>"$base/config/elasticsearch.yml"
    [[ -d $home/modules/ingest-geoip ]] && echo 'ingest.geoip.downloader.enabled: false' >>"$base/config/elasticsearch.yml"
    rm -f "$base/run/elasticsearch.pid"
    if [[ $base != "$RUN_DIR/elasticsearch" ]]; then
      ln -sfn "$base" "$RUN_DIR/elasticsearch"   # so <run>/elasticsearch/{logs,data} is always there
    fi
    local -a as_user=()
    if is_root; then
      chown -R "$ES_USER:$ES_USER" "$base"
      chmod 0750 "$base"
      as_user=(runuser -u "$ES_USER" --)
    fi
    printf '\n==== %s: starting Elasticsearch %s (ES_JAVA_HOME=%s, state in %s) ====\n' \
      "$(date -Is)" "$ELASTICSEARCH_VERSION" "$java_home" "$base" >>"$ES_LOG"
    # Foreground mode (no -d): the node's console log goes to <run>/logs/elasticsearch.log,
    # opened here by the caller, so it works even when the ES user cannot write to <run>.
    # -p writes the pid of the server JVM (the one we stop); the launcher pid is kept too.
    # We never signal runuser itself: it SIGKILLs its child 2 s after forwarding a SIGTERM.
    (
      cd "$base"
      # ES warns below 65535 open files; raising the hard limit needs CAP_SYS_RESOURCE (not
      # always there, e.g. sandboxes capped at 20000); the JVM lifts the soft limit to the hard one.
      ulimit -Hn 65535 2>/dev/null || true
      exec setsid "${as_user[@]}" env \
        ES_JAVA_HOME="$java_home" ES_PATH_CONF="$base/config" ES_TMPDIR="$base/tmp" \
        ES_JAVA_OPTS="-Xms512m -Xmx512m ${NEWSWATCH_LOCAL_ES_JAVA_OPTS:-}" \
        "$home/bin/elasticsearch" -p "$base/run/elasticsearch.pid"
    ) >>"$ES_LOG" 2>&1 </dev/null 9>&- &
    lpid=$!
    echo "$lpid" >"$ES_LAUNCHER_PID"
    pid=""
    log "elasticsearch starting (launcher pid $lpid), log: $ES_LOG"
  fi
  base=$(es_base)
  local deadline=$((SECONDS + ES_START_TIMEOUT))
  while :; do
    [[ -z $pid ]] && pid=$(es_server_pid) || true
    if [[ -n $pid ]] && es_ready; then break; fi
    if ! pid_alive "$pid" && ! pid_alive "$lpid"; then
      rm -f "$ES_PID" "$ES_LAUNCHER_PID"
      tail -n 40 "$ES_LOG" >&2 || true
      die "elasticsearch exited during startup; full log: $ES_LOG (and $base/logs/)"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 40 "$ES_LOG" >&2 || true
      terminate elasticsearch $pid; terminate elasticsearch-launcher $lpid
      rm -f "$ES_PID" "$ES_LAUNCHER_PID"
      die "elasticsearch not healthy on 127.0.0.1:$ES_PORT after ${ES_START_TIMEOUT}s; full log: $ES_LOG (and $base/logs/)"
    fi
    sleep 1
  done
  echo "$pid" >"$ES_PID"
  log "elasticsearch ready on http://127.0.0.1:$ES_PORT (pid $pid)"
}

stop_es() {
  local pid lpid base
  pid=$(es_server_pid) || pid=""
  lpid=$(es_launcher_pid) || lpid=""
  if [[ -z $pid && -z $lpid ]]; then
    log "elasticsearch not running"
  else
    # the server first (graceful shutdown); the launcher exits when its child does
    [[ -n $pid ]] && terminate elasticsearch "$pid"
    if [[ -n $lpid ]] && pid_alive "$lpid"; then
      local i
      for i in $(seq 20); do pid_alive "$lpid" || break; sleep 0.5; done
      if pid_alive "$lpid"; then
        # no server pid yet (killed during early startup): stop the launcher's process tree
        local kids; kids=$(pgrep -P "$lpid" 2>/dev/null || true)
        local grandkids=""; for k in $kids; do grandkids+=" $(pgrep -P "$k" 2>/dev/null || true)"; done
        # shellcheck disable=SC2086
        terminate elasticsearch-launcher $grandkids $kids
        terminate elasticsearch-launcher "$lpid"
      fi
    fi
  fi
  base=$(es_base)
  rm -f "$ES_PID" "$ES_LAUNCHER_PID" "$base/run/elasticsearch.pid"
}

status_es() {
  local pid h
  if pid=$(es_server_pid); then
    if h=$(es_health '' 5); then
      echo "elasticsearch: running (pid $pid) on http://127.0.0.1:$ES_PORT, cluster status $(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' <<<"$h")"
      return 0
    fi
    echo "elasticsearch: running (pid $pid), NOT answering on http://127.0.0.1:$ES_PORT"; return 1
  fi
  if es_launcher_pid >/dev/null; then echo "elasticsearch: starting"; return 1; fi
  echo "elasticsearch: stopped"; return 3
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------
targets() {
  case ${1:-all} in
    all) echo "kafka elasticsearch" ;;
    kafka) echo kafka ;;
    elasticsearch|es) echo elasticsearch ;;
    *) die "unknown service '${1}' (kafka|elasticsearch|all)" ;;
  esac
}

cmd_start() {
  with_lock
  local t
  for t in $(targets "${1:-all}"); do
    case $t in kafka) start_kafka ;; elasticsearch) start_es ;; esac
  done
}

cmd_stop() {
  with_lock
  local t
  for t in $(targets "${1:-all}"); do
    case $t in kafka) stop_kafka ;; elasticsearch) stop_es ;; esac
  done
}

cmd_status() {
  local t rc=0
  for t in $(targets "${1:-all}"); do
    case $t in
      kafka) status_kafka || rc=$? ;;
      elasticsearch) status_es || rc=$? ;;
    esac
  done
  return "$rc"
}

cmd_logs() {
  local which=all follow=()
  local a
  for a in "$@"; do
    case $a in -f|--follow) follow=(-F) ;; *) which=$a ;; esac
  done
  local -a files=()
  for a in $(targets "$which"); do
    case $a in kafka) files+=("$KAFKA_LOG") ;; elasticsearch) files+=("$ES_LOG") ;; esac
  done
  local existing=() f
  for f in "${files[@]}"; do [[ -f $f ]] && existing+=("$f"); done
  [[ ${#existing[@]} -gt 0 ]] || { log "no logs yet in $LOG_DIR"; return 0; }
  tail -n "${NEWSWATCH_LOCAL_LOG_LINES:-100}" "${follow[@]}" "${existing[@]}"
}

cmd_reset() {
  cmd_stop all
  local base; base=$(es_base)
  log "wiping $RUN_DIR (data, logs, pid files)"
  if [[ $base != "$RUN_DIR/elasticsearch" && -d $base ]]; then rm -rf "$base"; fi
  rm -rf "$RUN_DIR/kafka" "$RUN_DIR/elasticsearch" "$LOG_DIR" \
    "$KAFKA_PID" "$ES_PID" "$ES_LAUNCHER_PID"
}

cmd_env() {
  cat <<EOF
KAFKA_VERSION=$KAFKA_VERSION
ELASTICSEARCH_VERSION=$ELASTICSEARCH_VERSION
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
ELASTICSEARCH_URL=http://127.0.0.1:$ES_PORT
NEWSWATCH_LOCAL_RUN_DIR=$RUN_DIR
NEWSWATCH_LOCAL_CACHE_DIR=$CACHE_DIR
EOF
}

cmd_kafka_topics() {
  fetch_kafka
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$@"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    fetch) cmd_fetch ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_stop "$@"; cmd_start "$@" ;;
    status) cmd_status "$@" ;;
    logs) cmd_logs "$@" ;;
    reset) cmd_reset ;;
    env) cmd_env ;;
    kafka-topics) cmd_kafka_topics "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

# main and exit on one line: bash never reads past it, even if this file is edited in place while running
main "$@"; exit $?
