# shellcheck shell=bash disable=SC2034
# Sourced by deploy/up.sh, deploy/compose.sh and deploy/ci/e2e-compose.sh:
# the Compose command, the env files, the base images, building the images (the
# broker and the stores starting meanwhile), waiting for health and
# explaining a service that is not healthy.
#
# Environment: AIRBRIDGE_STACK (`cluster`: the 3-node RabbitMQ cluster of
# deploy/cluster/compose.yaml over deploy/compose.yaml, as the project
# airbridge-cluster; `mixed`: deploy/mixed/compose.yaml over it, the same
# project as the default, the one-node stack),
# AIRBRIDGE_PROJECT (Compose project name, default airbridge),
# AIRBRIDGE_ENV_DIR (where the env files are, default deploy/),
# AIRBRIDGE_UP_TIMEOUT (seconds to wait for health, default 300),
# AIRBRIDGE_HTTP_PORT / AIRBRIDGE_GRPC_PORT / AIRBRIDGE_RABBITMQ_UI_PORT
# (host ports, default 8000 / 50051 / 15672).

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$deploy_dir/.." && pwd)
compose_file=$deploy_dir/compose.yaml
# The Compose files of the stack: the base, then AIRBRIDGE_STACK's override.
compose_files=("$compose_file")
case ${AIRBRIDGE_STACK:-} in
  "") : "${AIRBRIDGE_PROJECT:=airbridge}" ;;
  cluster)
    compose_files+=("$deploy_dir/cluster/compose.yaml")
    : "${AIRBRIDGE_PROJECT:=airbridge-cluster}" ;;
  mixed)
    compose_files+=("$deploy_dir/mixed/compose.yaml")
    : "${AIRBRIDGE_PROJECT:=airbridge}" ;;
  *) printf 'error: AIRBRIDGE_STACK=%s: the stacks are the default, cluster and mixed\n' "$AIRBRIDGE_STACK" >&2; exit 1 ;;
esac
# Where the env files are (compose.yaml reads the same variable).
AIRBRIDGE_ENV_DIR=$(cd "${AIRBRIDGE_ENV_DIR:-$deploy_dir}" && pwd)
export AIRBRIDGE_ENV_DIR

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (is it running? may you use it?)"

# `docker compose` (v2) when there, else `docker-compose` (1.29 works).
compose_cmd=$("$deploy_dir/compose-command.sh") || exit 1
read -r -a compose_argv <<<"$compose_cmd"
compose() {
  local file files=()
  for file in "${compose_files[@]}"; do files+=(-f "$file"); done
  "${compose_argv[@]}" -p "$AIRBRIDGE_PROJECT" "${files[@]}" "$@"
}

# BuildKit where the CLI has it (buildx); else the classic builder, which
# the Dockerfile works with too (a CLI without buildx refuses DOCKER_BUILDKIT=1).
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
fi

# Image labels: the workspace version, the commit.
if [ -z "${AIRBRIDGE_VERSION:-}" ]; then
  AIRBRIDGE_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo_dir/Cargo.toml")
fi
if [ -z "${AIRBRIDGE_REVISION:-}" ]; then
  AIRBRIDGE_REVISION=$(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)
fi
export AIRBRIDGE_VERSION AIRBRIDGE_REVISION

# The host ports the stack publishes.
http_port=${AIRBRIDGE_HTTP_PORT:-8000}
grpc_port=${AIRBRIDGE_GRPC_PORT:-50051}
rabbitmq_ui_port=${AIRBRIDGE_RABBITMQ_UI_PORT:-15672}

# --- env files -------------------------------------------------------------

# The backends, each with a Redis of its own: <backend>-redis, on the network
# <backend>-store, its password in deploy/<backend>-store.env.
backends=(trips airports)

env_value() { # file variable
  sed -n "s/^$2=//p" "$1" | tail -n 1
}
new_password() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# Writes FILE from EXAMPLE, with PASSWORD for change-me and BACKEND for
# BACKEND (not in comments); readable by its owner only.
render_env_file() { # file password example [backend]
  local file=$1 example=$3 backend=${4:-}
  [ -f "$example" ] || die "$example is missing"
  (umask 077 && sed -e "/^[^#]/s/change-me/$2/g" -e "/^[^#]/s/BACKEND/$backend/g" "$example" >"$file")
  log "created ${file#"$repo_dir"/} from ${example#"$repo_dir"/} (a new random password)"
}

# The env files Compose reads, created from the examples in deploy/ when
# missing (never overwritten): rabbitmq.env and airbridge.env with one broker
# password (the existing file's, if one of the two is there),
# <backend>-store.env with a password per Redis, and for the cluster
# rabbitmq-cluster.env with the nodes' Erlang cookie. Then checks that each
# password is the same wherever it is written twice.
ensure_env_files() {
  local rabbit=$AIRBRIDGE_ENV_DIR/rabbitmq.env ours=$AIRBRIDGE_ENV_DIR/airbridge.env
  local password="" backend store
  if [ -f "$rabbit" ]; then password=$(env_value "$rabbit" RABBITMQ_DEFAULT_PASS); fi
  if [ -z "$password" ] && [ -f "$ours" ]; then password=$(env_value "$ours" RABBIT_PASSWORD); fi
  : "${password:=$(new_password)}"
  [ -f "$rabbit" ] || render_env_file "$rabbit" "$password" "$deploy_dir/rabbitmq.env.example"
  [ -f "$ours" ] || render_env_file "$ours" "$password" "$deploy_dir/airbridge.env.example"
  if [ -z "$(env_value "$ours" AMQP_URL)" ]; then
    if [ "$(env_value "$rabbit" RABBITMQ_DEFAULT_USER)" != "$(env_value "$ours" RABBIT_USER)" ] \
        || [ "$(env_value "$rabbit" RABBITMQ_DEFAULT_PASS)" != "$(env_value "$ours" RABBIT_PASSWORD)" ]; then
      die "the broker account differs between $rabbit (RABBITMQ_DEFAULT_USER/PASS)
  and $ours (RABBIT_USER/RABBIT_PASSWORD): make them the same"
    fi
  fi
  if [ "${AIRBRIDGE_STACK:-}" = cluster ] && [ ! -f "$AIRBRIDGE_ENV_DIR/rabbitmq-cluster.env" ]; then
    render_env_file "$AIRBRIDGE_ENV_DIR/rabbitmq-cluster.env" "$(new_password)" \
      "$deploy_dir/cluster/rabbitmq-cluster.env.example"
  fi
  for backend in "${backends[@]}"; do
    store=$AIRBRIDGE_ENV_DIR/$backend-store.env
    [ -f "$store" ] || render_env_file "$store" "$(new_password)" "$deploy_dir/store.env.example" "$backend"
    password=$(env_value "$store" REDISCLI_AUTH)
    case $(env_value "$store" REDIS_URL) in
      "redis://:$password@"*) ;;
      *) die "$store: REDIS_URL must carry the password REDISCLI_AUTH has
  (redis://:<REDISCLI_AUTH>@$backend-redis:6379/0)" ;;
    esac
  done
}

# --- base images -----------------------------------------------------------

# The public images deploy/Dockerfile builds FROM and deploy/compose.yaml
# runs, read from those two files.
stack_base_images() {
  {
    awk 'toupper($1) == "FROM" { if (toupper($3) == "AS") stage[$4] = 1; if (!($2 in stage) && $2 != "scratch") print $2 }' \
      "$deploy_dir/Dockerfile"
    sed -n 's/^ *image: *\([^$ ]*\) *$/\1/p' "$compose_file" | grep -v '^airbridge/'
  } | sort -u
}

# The Cargo.lock a rust:1-bookworm stand-in was built for must be this
# checkout's: the stand-in builds offline, from the crates it holds.
stale_rust_standin() {
  local label
  label=$(docker image inspect -f '{{ index .Config.Labels "airbridge.ci.cargo-lock-sha256" }}' rust:1-bookworm 2>/dev/null) || return 1
  [ -n "$label" ] && [ "$label" != "<no value>" ] \
    && [ "$label" != "$(sha256sum "$repo_dir/Cargo.lock" | cut -d' ' -f1)" ]
}

# How long `make base-images` took from nothing on the project's 2-core
# machine (shared), for the message below; see deploy/README.md.
standins_took="about 1.5 minutes (82 s measured)"

# Makes sure every base image is there: pulls a missing one (as Compose
# would), and where none can be pulled stops with what to do, which is an
# explicit step of its own: `make base-images`. Images in $@ are needed too.
require_base_images() {
  local image missing=() stale=""
  for image in $(stack_base_images) "$@"; do
    docker image inspect "$image" >/dev/null 2>&1 && continue
    if docker pull -q "$image" >/dev/null 2>&1; then log "pulled $image"; else missing+=("$image"); fi
  done
  if stale_rust_standin; then stale=rust:1-bookworm; fi
  if ((${#missing[@]} == 0)) && [ -z "$stale" ]; then return 0; fi
  {
    printf '\n'
    if ((${#missing[@]})); then
      printf 'error: these base images are missing and cannot be pulled here:\n'
      printf '    %s\n' "${missing[@]}"
      printf '\nBuild local stand-ins for them (the same names, from Debian'\''s packages):\n\n'
      printf '    make base-images\n\n'
      printf 'as root, with debootstrap installed (apt-get install debootstrap). It builds\n'
      printf 'only what is missing; all of it takes %s on 2 cores.\n' "$standins_took"
    else
      printf 'error: the local rust:1-bookworm stand-in holds the crates of another\n'
      printf 'Cargo.lock (it builds offline). Refresh it (no root needed, a minute):\n\n'
      printf '    make base-images\n'
    fi
    printf '\nThen run this again. (deploy/README.md: "Where no registry is reachable".)\n'
  } >&2
  exit 1
}

# --- build -------------------------------------------------------------------

# The stack's services that Compose does not build (no `build:` section: the
# broker, the stores), in the merged configuration's order.
pulled_services() {
  compose config | awk '
    /^[^ ]/ { in_services = ($0 == "services:"); next }
    in_services && /^  [^ ]/ { name = substr($1, 1, length($1) - 1); names[++n] = name; next }
    in_services && /^    build:/ { built[name] = 1 }
    END { for (i = 1; i <= n; i++) if (!(names[i] in built)) print names[i] }'
}

# `up -d` of the services that need no build (never an empty list: that
# would start, and build, everything).
start_pulled_services() {
  local services
  services=$(pulled_services)
  # shellcheck disable=SC2086  # one word per service
  [ -z "$services" ] || compose up -d $services
}

# Builds our images (Compose's `build`, arguments $@) while the services that
# need no build start: the broker's boot (15-20 s on 2 cores) overlaps the
# build instead of following it. Their output comes after the build's; a
# failure of either fails this. After a failed build they stay up (make down).
build_images() {
  local started pid status=0
  started=$(mktemp)
  start_pulled_services >"$started" 2>&1 &
  pid=$!
  log "building the images with $compose_cmd (the broker and the stores start meanwhile)"
  compose build "$@" || status=1
  wait "$pid" || { status=1; log "starting the broker and the stores failed:"; }
  cat "$started" >&2
  rm -f "$started"
  return "$status"
}

# --- health ----------------------------------------------------------------

# One line per container of the project, stopped ones too: name, state,
# health; and a "<service> missing -" line for a service with no container.
container_states() {
  local ids
  ids=$(compose ps -a -q)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}} {{index .Config.Labels "com.docker.compose.service"}}' $ids \
      | sed 's|^/||'
  fi | awk -v services="$(compose config --services | tr '\n' ' ')" '
    { print $1, $2, $3; seen[$4] = 1 }
    END { n = split(services, s, " "); for (i = 1; i <= n; i++) if (!(s[i] in seen)) print s[i], "missing", "-" }'
}

# The lines of container_states that are not running and healthy.
not_healthy() { awk '$2 != "running" || ($3 != "healthy" && $3 != "no-healthcheck")' <<<"$1"; }

# What to do about a container's known failure, judged from its logs.
hint_for() { # container logs
  case $2 in
    *ACCESS_REFUSED*)
      echo "the broker refused our services' account. deploy/airbridge.env (RABBIT_USER/RABBIT_PASSWORD,
  or AMQP_URL) must match deploy/rabbitmq.env; the broker takes rabbitmq.env's account at every
  start, so after fixing the files run make up again." ;;
    *WRONGPASS* | *NOAUTH* | *"invalid username-password"*)
      echo "Redis refused the password: REDISCLI_AUTH and the password in REDIS_URL of
  deploy/<backend>-store.env must be the same; fix the file and run make up again." ;;
    *"Permission denied"* | *"read-only file system"* | *"Read-only file system"*)
      echo "a write the locked-down container may not do (read-only root file system, no
  capabilities, non-root user): see compose.yaml's tmpfs and user settings." ;;
    *) echo "see the log lines above; all of it: make logs ARGS=$1 (or deploy/compose.sh logs $1)." ;;
  esac
}

# For each container in $1 (lines of container_states): its state, its last
# log lines and health check outputs, and a hint.
explain_unhealthy() {
  local name state health logs
  while read -r name state health; do
    [ -n "$name" ] || continue
    printf '\n--- %s: %s, %s\n' "$name" "$state" "$health" >&2
    [ "$state" = missing ] && continue
    logs=$(docker logs --tail 12 "$name" 2>&1 || true)
    sed 's/^/    /' <<<"$logs" >&2
    docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}    health check: exit {{.ExitCode}} {{.Output}}{{end}}{{end}}' \
      "$name" 2>/dev/null | grep . | tail -n 3 >&2 || true
    printf '  hint: %s\n' "$(hint_for "$name" "$logs")" >&2
  done <<<"$1"
}

# Waits until every container of the project runs and is healthy. Fails,
# explaining what is not, after $1 seconds (default AIRBRIDGE_UP_TIMEOUT or
# 300), or sooner when a container stays unhealthy or stopped for 20 s (a
# service that is briefly unhealthy, say while the broker restarts, recovers
# within that).
wait_healthy() {
  local timeout=${1:-${AIRBRIDGE_UP_TIMEOUT:-300}}
  local deadline=$((SECONDS + timeout)) states pending name state health broken
  local -A bad_since=()
  log "waiting for every service to be healthy (at most ${timeout} s)"
  while :; do
    states=$(container_states)
    pending=$(not_healthy "$states")
    if [ -n "$states" ] && [ -z "$pending" ]; then
      log "all healthy after $((SECONDS - deadline + timeout)) s:"
      sed 's/^/    /' <<<"$states" >&2
      return 0
    fi
    broken=""
    while read -r name state health; do
      case $state/$health in
        exited/* | dead/* | */unhealthy)
          : "${bad_since[$name]:=$SECONDS}"
          if ((SECONDS - bad_since[$name] >= 20)); then broken=1; fi ;;
        *) unset "bad_since[$name]" ;;
      esac
    done <<<"$pending"
    if [ -n "$broken" ] || ((SECONDS >= deadline)); then
      printf '\nnot healthy after %s s:\n' "$((SECONDS - deadline + timeout))" >&2
      explain_unhealthy "${pending:-no containers}"
      return 1
    fi
    sleep 2
  done
}

# `up -d` ARGS..., then wait_healthy. Compose itself stops at a dependency
# that ends unhealthy, saying only "Container <id> is unhealthy": then the
# same explanation as wait_healthy's, for every container not healthy.
up_and_wait() {
  if ! compose up -d --remove-orphans "$@"; then
    printf '\nCompose could not start the stack; what is not healthy:\n' >&2
    explain_unhealthy "$(not_healthy "$(container_states)")"
    return 1
  fi
  wait_healthy
}

# --- a throwaway stack -----------------------------------------------------

# For `make chaos-cluster` and `make bench-compose`: the stack as a Compose
# project of its own, on env files of its own in AIRBRIDGE_ENV_DIR (a
# temporary directory the caller made for it), built, started and waited for;
# torn down with its volumes, and that directory removed, when the calling
# script exits, whatever the result. Arguments go to `up -d`.
start_throwaway_stack() {
  trap teardown_throwaway_stack EXIT
  ensure_env_files
  require_base_images
  build_images -q || die "the images did not build: see above"
  log "starting the stack (project $AIRBRIDGE_PROJECT)"
  up_and_wait "$@" || die "the stack did not become healthy: see above"
}

teardown_throwaway_stack() {
  log "tearing the stack down (project $AIRBRIDGE_PROJECT)"
  compose down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$AIRBRIDGE_ENV_DIR"
}
