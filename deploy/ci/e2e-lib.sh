# shellcheck shell=bash
# Sourced by deploy/ci/e2e-compose.sh (after deploy/lib.sh): reporting, HTTP
# and JSON checks, and probes that look at the running stack from inside it.
#
# Our images have no shell and no tools (distroless), so nothing can be
# `docker exec`ed in them but their binaries. A probe is a throwaway
# container of debian:bookworm-slim started with `--network container:<id>`:
# it shares that container's network namespace (its interfaces, addresses,
# routes and Docker DNS), so what the probe reaches is exactly what the
# container reaches. bash's /dev/tcp makes the connection.

started=$SECONDS
step() { printf '\n=== %s (%d s)\n' "$*" "$((SECONDS - started))" >&2; }
fail() {
  printf '\nE2E FAILED: %s\n' "$*" >&2
  exit 1
}
ok() { printf '  ok: %s\n' "$*" >&2; }

# --- HTTP, JSON ---------------------------------------------------------------
body_file=$(mktemp)
# request METHOD PATH [BODY]: prints the body; fails unless the status is 200.
request() {
  local status
  local args=(-sS --max-time 10 -o "$body_file" -w '%{http_code}' -X "$1" "http://localhost:$http_port$2")
  if [ $# -ge 3 ]; then args+=(-H 'content-type: application/json' -d "$3"); fi
  status=$(curl "${args[@]}") || fail "curl -X $1 $2 failed"
  [ "$status" = 200 ] || fail "$1 $2 answered $status: $(cat "$body_file")"
  cat "$body_file"
}
# json_equal ACTUAL EXPECTED: the same JSON value, whatever the spacing.
json_equal() {
  python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"
}
expect_json() { # what actual expected
  json_equal "$2" "$3" || fail "$1: expected $3, got $2"
  ok "$1 -> $2"
}
is_id() { [[ $1 =~ ^[0-9a-f]{32}$ ]]; }
# The status of GET PATH on the broker's management API as USER:PASSWORD.
management_status() { # path user password
  curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -u "$2:$3" \
    "http://127.0.0.1:$rabbitmq_ui_port$1" || echo "no answer"
}

# --- containers -------------------------------------------------------------------
container_of() { compose ps -q "$1" | head -n 1; }
name_of() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
ips_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1"; }
service_of() { docker inspect -f '{{ index .Config.Labels "com.docker.compose.service" }}' "$1"; }

# run_probe CONTAINER IMAGE COMMAND...: COMMAND in a throwaway container of
# IMAGE inside CONTAINER's network namespace.
run_probe() {
  local id=$1
  shift
  docker run --rm --label "airbridge.e2e=$AIRBRIDGE_PROJECT" --network "container:$id" "$@"
}

# tcp_probe CONTAINER HOST:PORT...: a line "HOST:PORT open" or "HOST:PORT
# closed" per target, as seen from CONTAINER (3 s per connection attempt).
tcp_probe() {
  local id=$1
  shift
  # shellcheck disable=SC2016 # expanded by the probe's bash
  run_probe "$id" debian:bookworm-slim bash -c '
    for target; do
      if timeout 3 bash -c "exec 3<>/dev/tcp/${target%:*}/${target##*:}" 2>/dev/null
      then echo "$target open"; else echo "$target closed"; fi
    done' probe "$@"
}

# expect_reach CONTAINER open|closed WHAT HOST:PORT...: every target is as
# expected from CONTAINER (WHAT names them in the messages).
expect_reach() {
  local id=$1 expected=$2 what=$3 target got from
  shift 3
  from=$(name_of "$id")
  while read -r target got; do
    [ "$got" = "$expected" ] || fail "$from: $what ($target) is $got, expected $expected"
    ok "$from: $what ($target) $got"
  done < <(tcp_probe "$id" "$@")
}

# expect_no_name CONTAINER NAME: NAME does not resolve from CONTAINER (an
# internal network's DNS may also time out on an unknown name: 3 s).
expect_no_name() {
  if run_probe "$1" debian:bookworm-slim timeout 3 getent hosts "$2" >/dev/null 2>&1; then
    fail "$2 resolves from $(name_of "$1")"
  fi
  ok "$2 does not resolve from $(name_of "$1")"
}

# redis_ping FROM-CONTAINER HOST [PASSWORD]: what redis-cli's PING answers,
# from inside FROM-CONTAINER (the redis image's own redis-cli).
redis_ping() {
  local auth=()
  if [ -n "${3:-}" ]; then auth=(-e "REDISCLI_AUTH=$3"); fi
  run_probe "$1" "${auth[@]}" --entrypoint redis-cli redis:7-alpine -h "$2" ping 2>&1 \
    | tr '\n' ' ' | sed 's/ $//'
}

# --- lock-down ----------------------------------------------------------------------
# expect_locked_down CONTAINER TMPFS: a read-only root file system, every
# capability dropped, no-new-privileges, no tmpfs but TMPFS (a JSON object or
# null), and no process running as root.
expect_locked_down() {
  local id=$1 tmpfs=$2 name got uids
  name=$(name_of "$id")
  got=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}} {{json .HostConfig.Tmpfs}}' "$id")
  [ "$got" = "true [\"ALL\"] [\"no-new-privileges:true\"] $tmpfs" ] \
    || fail "$name: read-only, cap_drop, security_opt, tmpfs are '$got',
  expected 'true [\"ALL\"] [\"no-new-privileges:true\"] $tmpfs'"
  uids=$(docker top "$id" -eo pid,uid | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')
  [ -n "$uids" ] || fail "$name: no process"
  case " $uids" in *" 0 "*) fail "$name: a process runs as root (uids: $uids)" ;; esac
  ok "$name: read-only root, no capabilities, no-new-privileges, tmpfs $tmpfs, uids $uids"
}

# expect_no_shell CONTAINER: the image has no shell to exec.
expect_no_shell() {
  local out
  if out=$(docker exec "$1" sh -c true 2>&1); then fail "$(name_of "$1") has a shell"; fi
  case $out in
    *"executable file not found"* | *"no such file"*) ok "$(name_of "$1"): no shell (exec sh: not found)" ;;
    *) fail "$(name_of "$1"): exec sh failed, but not for want of a shell: $out" ;;
  esac
}
