#!/bin/bash
# Entry point of the rabbitmq:3-management stand-in: like the official image,
# the default user comes from RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS
# (created on the node's first start), guest may log in from anywhere when it
# is the default user, and the server runs in the foreground as rabbitmq.
set -euo pipefail
if [ "${1:-}" = rabbitmq-server ]; then
  conf=/etc/rabbitmq/rabbitmq.conf
  {
    echo "loopback_users.guest = false"
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then echo "default_user = $RABBITMQ_DEFAULT_USER"; fi
    if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "default_pass = $RABBITMQ_DEFAULT_PASS"; fi
    if [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]; then echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"; fi
  } > "$conf"
  chown rabbitmq:rabbitmq "$conf" /var/lib/rabbitmq
  chmod 600 "$conf"
  shift
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
    /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
