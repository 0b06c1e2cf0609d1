#!/bin/sh
# Entry point of the redis:7-alpine stand-in, after the official one: options
# alone mean redis-server; redis-server runs as the redis user, owning /data,
# with protected mode off unless the command line sets it.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  case " $* " in
    *" --protected-mode "*) ;;
    *)
      # A config file has to stay the first argument.
      if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        conf=$1; shift
        set -- "$conf" --protected-mode no "$@"
      else
        set -- --protected-mode no "$@"
      fi
      ;;
  esac
  if [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' + 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@"
  fi
  exec redis-server "$@"
fi
exec "$@"
