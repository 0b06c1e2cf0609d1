#!/bin/bash
# Entry point of the rabbitmq:3-management stand-in, as the official one:
# started as root, it gives the data volume to rabbitmq and runs the command
# as rabbitmq; started as another user (compose.yaml's `user: rabbitmq`, no
# capabilities), it runs the command as it is. Writes nothing else.
set -euo pipefail
if [[ ${1:-} == rabbitmq* ]] && [ "$(id -u)" = 0 ]; then
  if [ "$1" = rabbitmq-server ]; then
    find /var/lib/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
  fi
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "${BASH_SOURCE[0]}" "$@"
fi
exec "$@"
