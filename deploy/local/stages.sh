#!/usr/bin/env bash
# The pipeline stages (five, and the retrier of delayed retries) as local processes
# (the native counterpart of the compose services). Used by `make up` / `make down`.
#
#   deploy/local/stages.sh start [STAGE...]   start (default: all six), wait until each is ready
#   deploy/local/stages.sh stop  [STAGE...]   SIGTERM (finish batch, flush, commit), then SIGKILL
#   deploy/local/stages.sh status
#
# Every NEWSWATCH_* variable of the caller reaches the stages (e.g. NEWSWATCH_FEEDS).
# NEWSWATCH_LOCAL_FETCHERS=N (default 1) runs N fetcher replicas, named fetcher,
# fetcher-2 .. fetcher-N: one consumer group, news.entries partitioned by host, so
# each host is fetched by one replica (N above the topic's partitions leaves some idle).
# Logs: <run>/logs/<instance>.log; pids: <run>/<instance>.pid; readiness:
# <run>/ready/<stage> (replica K: <run>/ready/fetcher-K/fetcher).
# Metrics: each stage on its own port, NEWSWATCH_LOCAL_METRICS_BASE_PORT (9101) + its
# place in ALL_STAGES (poller 9101 ... alerter 9105, retrier 9106), fetcher replica K
# on 9105 + K (fetcher-2 9107, ...); 0 serves none.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
RUN_DIR=$(realpath -m "${NEWSWATCH_LOCAL_RUN_DIR:-$REPO_DIR/.run}")
LOG_DIR=$RUN_DIR/logs
READY_DIR=$RUN_DIR/ready
NEWSWATCH_LOCAL_BIN=${NEWSWATCH_LOCAL_BIN:-$REPO_DIR/.venv/bin/newswatch}
ALL_STAGES=(poller fetcher enricher indexer alerter retrier)
START_TIMEOUT=${NEWSWATCH_LOCAL_STAGE_START_TIMEOUT:-120}
STOP_TIMEOUT=${NEWSWATCH_LOCAL_STOP_TIMEOUT:-60}
METRICS_BASE_PORT=${NEWSWATCH_LOCAL_METRICS_BASE_PORT:-9101}
FETCHERS=${NEWSWATCH_LOCAL_FETCHERS:-1}

log() { printf '[stages] %s\n' "$*" >&2; }
die() { printf '[stages] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $FETCHERS =~ ^[1-9][0-9]*$ ]] || die "NEWSWATCH_LOCAL_FETCHERS must be a whole number >= 1, not '$FETCHERS'"

# An instance is a stage (`fetcher`) or one of its replicas (`fetcher-2`).
stage_of() { printf '%s\n' "${1%-[0-9]*}"; }
ready_file() {
  if [[ $1 == "$(stage_of "$1")" ]]; then printf '%s\n' "$READY_DIR/$1"
  else printf '%s\n' "$READY_DIR/$1/$(stage_of "$1")"; fi
}
# The instances of STAGE...: the fetcher as NEWSWATCH_LOCAL_FETCHERS replicas; with
# --running, also replicas started earlier with a larger count (so `stop` gets them).
instances() {
  local running=0 s k pidfile
  if [[ ${1:-} == --running ]]; then running=1; shift; fi
  for s in "$@"; do
    printf '%s\n' "$s"
    [[ $s == fetcher ]] || continue
    for ((k = 2; k <= FETCHERS; k++)); do printf 'fetcher-%d\n' "$k"; done
    if ((running)); then
      for pidfile in "$RUN_DIR"/fetcher-*.pid; do
        [[ -e $pidfile ]] || continue
        k=${pidfile##*/fetcher-}; k=${k%.pid}
        if ((k > FETCHERS)); then printf 'fetcher-%d\n' "$k"; fi
      done
    fi
  done
}

pid_of() {
  local file=$RUN_DIR/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# One port per stage: they share 127.0.0.1 (compose gives each container its own 9100)
metrics_port() {
  local i
  ((METRICS_BASE_PORT)) || { echo 0; return; }
  # fetcher replica K (fetcher-2, ...): after the stages' ports
  if [[ $1 =~ ^fetcher-([0-9]+)$ ]]; then
    echo $((METRICS_BASE_PORT + ${#ALL_STAGES[@]} + BASH_REMATCH[1] - 2)); return
  fi
  for i in "${!ALL_STAGES[@]}"; do
    if [[ ${ALL_STAGES[$i]} == "$1" ]]; then echo $((METRICS_BASE_PORT + i)); return; fi
  done
  echo 0
}

start_one() {
  local stage=$1 pid ready
  if pid=$(pid_of "$stage"); then
    log "$stage already running (pid $pid)"
    return 0
  fi
  ready=$(ready_file "$stage")
  rm -f "$ready"
  # setsid: the stage gets its own session, so it outlives this script and a
  # terminal's Ctrl-C; `stop` signals its supervisor by pid.
  NEWSWATCH_METRICS_PORT=$(metrics_port "$stage") NEWSWATCH_READY_DIR=$(dirname "$ready") \
    setsid bash "$SCRIPT_DIR/stages.sh" supervise "$stage" \
    >>"$LOG_DIR/$stage.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$stage.pid"
  log "$stage started (pid $!), log $LOG_DIR/$stage.log"
}

# The native counterpart of compose's `restart: unless-stopped`. A stage exits
# non-zero when it cannot deliver a batch (Elasticsearch or Kafka down): nothing
# was committed, so running it again redelivers the batch. SIGTERM is passed on
# to the stage, which finishes its batch, commits and exits; then so does this.
supervise() {
  local stage=$1 child='' rc stopping=0 delay=${NEWSWATCH_LOCAL_STAGE_RESTART_DELAY:-5}
  trap 'stopping=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
  while :; do
    "$NEWSWATCH_LOCAL_BIN" run "$(stage_of "$stage")" &
    child=$!
    # `wait` returns early when a trapped signal arrives: wait until the stage is gone
    rc=0; wait "$child" || rc=$?
    while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
    child=''
    if ((stopping || rc == 0)); then exit 0; fi
    printf '[stages] %s exited with status %d; restarting in %ss\n' "$stage" "$rc" "$delay"
    sleep "$delay" & wait $! || true
    if ((stopping)); then exit 0; fi
  done
}

wait_ready() {
  local stage=$1 deadline=$((SECONDS + START_TIMEOUT)) ready
  ready=$(ready_file "$stage")
  while [[ ! -f $ready ]]; do
    pid_of "$stage" >/dev/null || { tail -n 20 "$LOG_DIR/$stage.log" >&2; die "$stage exited during start-up"; }
    ((SECONDS < deadline)) || die "$stage not ready after ${START_TIMEOUT}s (see $LOG_DIR/$stage.log)"
    sleep 0.5
  done
  log "$stage ready"
}

stop_one() {
  local stage=$1 pid deadline
  if ! pid=$(pid_of "$stage"); then
    rm -f "$RUN_DIR/$stage.pid" "$(ready_file "$stage")"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$stage did not stop within ${STOP_TIMEOUT}s; killing"
    # the supervisor leads its own process group (setsid): kill the stage with it
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$stage.pid" "$(ready_file "$stage")"
  log "$stage stopped"
}

main() {
  local cmd=${1:-}; shift || true
  local stages=("$@")
  ((${#stages[@]})) || stages=("${ALL_STAGES[@]}")
  mkdir -p "$LOG_DIR" "$READY_DIR"
  case $cmd in
    start) mapfile -t stages < <(instances "${stages[@]}") ;;
    stop|status) mapfile -t stages < <(instances --running "${stages[@]}") ;;
  esac
  case $cmd in
    start)
      [[ -x $NEWSWATCH_LOCAL_BIN ]] || die "$NEWSWATCH_LOCAL_BIN not found: run 'make venv' first"
      for s in "${stages[@]}"; do start_one "$s"; done
      for s in "${stages[@]}"; do wait_ready "$s"; done ;;
    stop)
      # downstream last: the poller stops first so the others can drain what it sent
      for s in "${stages[@]}"; do stop_one "$s"; done ;;
    supervise) supervise "${stages[0]}" ;;
    status)
      local rc=0
      for s in "${stages[@]}"; do
        if pid=$(pid_of "$s"); then
          if [[ -f $(ready_file "$s") ]]; then echo "$s: running (pid $pid), ready"; else echo "$s: running (pid $pid), not ready"; fi
        else echo "$s: stopped"; rc=1; fi
      done
      return $rc ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}

main "$@"
