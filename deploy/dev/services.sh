#!/usr/bin/env bash
# Runs a command (`make test`, `make bench`, `make chaos`) once what it talks
# to is there: a RabbitMQ on localhost (AMQP_URL to point elsewhere), started
# here when it can be, and the redis-server binary (the tests, the benchmark
# and the chaos suite start private Redis servers, so they can stop and
# restart them).
#   deploy/dev/services.sh cargo test --workspace
set -euo pipefail
cd "$(dirname "$0")/../.."

amqp_port=${AMQP_PORT:-5672}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds what
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    if ((SECONDS >= deadline)); then echo "error: $3 did not come up within $2 s" >&2; return 1; fi
    sleep 0.5
  done
}

# The broker this script starts is the node rabbit@localhost. The default name
# is rabbit@<hostname>, and where the hostname does not resolve (CI containers)
# that node never boots, while `rabbitmq-server -detached` still exits 0.
# rabbitmqctl, which some tests call, reads the same variable.
local_node=rabbit@localhost

start_rabbitmq() {
  echo "starting RabbitMQ (RABBITMQ_NODENAME=$local_node rabbitmq-server -detached)"
  export RABBITMQ_NODENAME=$local_node
  rabbitmq-server -detached
  if ! wait_port "$amqp_port" 120 "RabbitMQ"; then
    tail -n 30 "/var/log/rabbitmq/$local_node.log" >&2 2>/dev/null || true
    exit 1
  fi
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if port_open "$amqp_port"; then
  # Already running; if it is the node an earlier run started, say so to rabbitmqctl.
  if [ -z "${RABBITMQ_NODENAME:-}" ] && command -v rabbitmqctl >/dev/null \
      && RABBITMQ_NODENAME=$local_node rabbitmqctl -q ping >/dev/null 2>&1; then
    export RABBITMQ_NODENAME=$local_node
  fi
elif [ -z "${AMQP_URL:-}" ]; then
  if command -v rabbitmq-server >/dev/null; then
    start_rabbitmq
  elif compose=$(deploy/compose-command.sh 2>/dev/null) \
      && $compose -p airbridge-dev -f deploy/dev/compose.yaml up -d 2>/dev/null; then
    echo "started RabbitMQ with $compose -p airbridge-dev -f deploy/dev/compose.yaml"
    export RABBITMQCTL="docker exec airbridge-dev-rabbitmq rabbitmqctl"
    wait_port "$amqp_port" 120 "RabbitMQ"
  else
    missing+=(rabbitmq-server)
  fi
fi
if ((${#missing[@]})); then
  cat >&2 <<MSG
error: this needs ${missing[*]}, which is not installed.
  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}
  macOS:         brew install ${missing[*]/redis-server/redis}
(Or point AMQP_URL at a RabbitMQ you already run.)
MSG
  exit 1
fi

exec "$@"
