# shellcheck shell=bash disable=SC2034
# Sourced by deploy/up.sh, down.sh, logs.sh, ps.sh and ci/e2e-compose.sh:
# the Compose command, the env files, waiting for health.
#
# Environment: AIRBRIDGE_PROJECT (Compose project name, default airbridge),
# AIRBRIDGE_UP_TIMEOUT (seconds to wait for health, default 300),
# AIRBRIDGE_HTTP_PORT / AIRBRIDGE_GRPC_PORT / AIRBRIDGE_RABBITMQ_UI_PORT
# (host ports, default 8000 / 50051 / 15672).

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$deploy_dir/.." && pwd)
compose_file=$deploy_dir/compose.yaml
: "${AIRBRIDGE_PROJECT:=airbridge}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (is it running? may you use it?)"

# `docker compose` (v2) when there, else `docker-compose` (1.29 works).
compose_cmd=$("$deploy_dir/compose-command.sh") || exit 1
read -r -a compose_argv <<<"$compose_cmd"
compose() { "${compose_argv[@]}" -p "$AIRBRIDGE_PROJECT" -f "$compose_file" "$@"; }

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

env_value() { # file variable
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# deploy/rabbitmq.env and deploy/airbridge.env from their examples when
# missing, with one fresh random broker password in both (or the one the
# existing file has); then checks that the two agree.
ensure_env_files() {
  local rabbit=$deploy_dir/rabbitmq.env ours=$deploy_dir/airbridge.env password=""
  if [ -f "$rabbit" ]; then password=$(env_value "$rabbit" RABBITMQ_DEFAULT_PASS); fi
  if [ -z "$password" ] && [ -f "$ours" ]; then password=$(env_value "$ours" RABBIT_PASSWORD); fi
  if [ -z "$password" ]; then password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); fi
  local file
  for file in "$rabbit" "$ours"; do
    [ -f "$file" ] && continue
    [ -f "$file.example" ] || die "$file.example is missing"
    (umask 077 && sed -e "s/^RABBITMQ_DEFAULT_PASS=change-me\$/RABBITMQ_DEFAULT_PASS=$password/" \
      -e "s/^RABBIT_PASSWORD=change-me\$/RABBIT_PASSWORD=$password/" "$file.example" >"$file")
    log "created ${file#"$repo_dir"/} from ${file#"$repo_dir"/}.example"
  done
  if [ -z "$(env_value "$ours" AMQP_URL)" ]; then
    if [ "$(env_value "$rabbit" RABBITMQ_DEFAULT_USER)" != "$(env_value "$ours" RABBIT_USER)" ] \
        || [ "$(env_value "$rabbit" RABBITMQ_DEFAULT_PASS)" != "$(env_value "$ours" RABBIT_PASSWORD)" ]; then
      die "the broker account differs between deploy/rabbitmq.env (RABBITMQ_DEFAULT_USER/PASS)
  and deploy/airbridge.env (RABBIT_USER/RABBIT_PASSWORD): make them the same"
    fi
  fi
}

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

# Waits until every container of the project runs and is healthy; after
# $1 seconds (default AIRBRIDGE_UP_TIMEOUT or 300) shows what is not and
# its last logs, and fails.
wait_healthy() {
  local timeout=${1:-${AIRBRIDGE_UP_TIMEOUT:-300}}
  local deadline=$((SECONDS + timeout)) states pending
  log "waiting for every service to be healthy (at most ${timeout} s)"
  while :; do
    states=$(container_states)
    pending=$(awk '$2 != "running" || ($3 != "healthy" && $3 != "no-healthcheck")' <<<"$states")
    if [ -n "$states" ] && [ -z "$pending" ]; then
      log "all healthy after $((SECONDS - deadline + timeout)) s:"
      sed 's/^/    /' <<<"$states" >&2
      return 0
    fi
    if ((SECONDS >= deadline)); then
      printf '\nnot healthy after %s s:\n%s\n' "$timeout" "${pending:-no containers}" >&2
      local name
      for name in $(awk '{print $1}' <<<"$pending"); do
        printf '\n--- last logs of %s:\n' "$name" >&2
        docker logs --tail 30 "$name" 2>&1 | sed 's/^/    /' >&2
        docker inspect -f '{{range .State.Health.Log}}    health: {{.ExitCode}} {{.Output}}{{end}}' "$name" 2>/dev/null | tail -n 3 >&2 || true
      done
      return 1
    fi
    sleep 2
  done
}

# The host ports the stack publishes.
http_port=${AIRBRIDGE_HTTP_PORT:-8000}
grpc_port=${AIRBRIDGE_GRPC_PORT:-50051}
rabbitmq_ui_port=${AIRBRIDGE_RABBITMQ_UI_PORT:-15672}

# The public base images the Dockerfile and compose file name: pulled when
# missing, else (no registry, as on this project's machines) built locally
# as stand-ins by deploy/ci/local-base-images.sh, which also refreshes the
# rust stand-in when Cargo.lock or the toolchain changed.
ensure_base_images() {
  local image missing=() still_missing=0 rust_standin
  for image in rust:1-bookworm debian:bookworm-slim rabbitmq:3-management redis:7-alpine; do
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
  done
  for image in "${missing[@]}"; do
    if timeout 120 docker pull -q "$image" >/dev/null 2>&1; then log "pulled $image"; fi
  done
  rust_standin=$(docker image inspect -f '{{ index .Config.Labels "airbridge.ci.standin" }}' rust:1-bookworm 2>/dev/null || true)
  for image in "${missing[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || still_missing=1
  done
  if ((still_missing)) || [ "$rust_standin" = rust ]; then
    log "no registry for some base images: building local stand-ins"
    "$deploy_dir/ci/local-base-images.sh"
  fi
}
