#!/bin/sh
# The RabbitMQ container's entry point in deploy/compose.yaml (mounted
# read-only), before the image's own: makes the broker's account follow
# deploy/rabbitmq.env on EVERY start, not only on the first one.
#
# RabbitMQ itself creates RABBITMQ_DEFAULT_USER only when its data volume is
# new, so a volume kept from an earlier checkout (another generated password)
# refused our services with ACCESS_REFUSED. Instead, this writes a
# definitions file holding the account (user, password, administrator tag,
# full rights on the vhost /) to the container's tmpfs and points
# `load_definitions` at it through an advanced.config there too: RabbitMQ
# imports definitions at every boot and an import updates an existing user's
# password. (With definitions to load, RabbitMQ also creates no default user,
# so no guest account ever exists.) Nothing of it reaches an image or the
# volume; the password stays in the container's memory.
set -eu

user=${RABBITMQ_DEFAULT_USER:?RABBITMQ_DEFAULT_USER is not set (deploy/rabbitmq.env)}
password=${RABBITMQ_DEFAULT_PASS:?RABBITMQ_DEFAULT_PASS is not set (deploy/rabbitmq.env)}
dir=${TMPDIR:-/tmp}/airbridge-rabbitmq

# A JSON string's content: backslashes and quotes escaped (the generated
# password is hex; a hand-written one may hold anything printable).
json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
user=$(json_escape "$user")
password=$(json_escape "$password")

umask 077
mkdir -p "$dir"
cat >"$dir/definitions.json" <<EOF
{
  "users": [{"name": "$user", "password": "$password", "tags": ["administrator"]}],
  "vhosts": [{"name": "/"}],
  "permissions": [{"user": "$user", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
}
EOF
printf '[{rabbit, [{load_definitions, "%s"}]}].\n' "$dir/definitions.json" >"$dir/advanced.config"
export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"

# A cluster's nodes share an Erlang cookie (deploy/cluster): from the env
# file into the cookie file Erlang and the CLI tools read, at every start, so
# a new cookie in the env file takes on the next start. (RabbitMQ 3.9 and
# later deprecate the variable itself.)
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
  cookie=${HOME:-/var/lib/rabbitmq}/.erlang.cookie
  rm -f "$cookie"
  printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$cookie"
  chmod 400 "$cookie"
  unset RABBITMQ_ERLANG_COOKIE
fi
exec docker-entrypoint.sh "$@"
