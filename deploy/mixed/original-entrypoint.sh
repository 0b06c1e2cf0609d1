#!/bin/sh
# Runs one service of the original system (argument: trips, airports or
# gateway) with nameko, on the broker our services use (healthcheck.py --uri
# says which).
set -eu
AMQP_URI=$(python3 /usr/local/bin/healthcheck.py --uri)
export AMQP_URI
exec nameko run --config config.yaml "${1:-trips}"
