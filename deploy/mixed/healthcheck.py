"""Health of an original nameko service in a container: exit 0 while
something consumes its queue rpc-<NAMEKO_SERVICE> (a passive declare: no
call, no reply queue left behind). `--uri` prints the broker URI instead:
AMQP_URI, else one made of RABBIT_USER, RABBIT_PASSWORD, RABBIT_HOST and
RABBIT_PORT (as deploy/airbridge.env gives them to our services)."""
import os
import sys
from urllib.parse import quote


def uri():
    if os.environ.get("AMQP_URI"):
        return os.environ["AMQP_URI"]
    env = os.environ.get
    return "amqp://%s:%s@%s:%s/" % (
        quote(env("RABBIT_USER", "guest"), safe=""),
        quote(env("RABBIT_PASSWORD", "guest"), safe=""),
        env("RABBIT_HOST", "localhost"),
        env("RABBIT_PORT", "5672"),
    )


if sys.argv[1:] == ["--uri"]:
    print(uri())
    sys.exit(0)

from kombu import Connection  # noqa: E402 (not needed for --uri)

name = os.environ["NAMEKO_SERVICE"]
try:
    with Connection(uri(), connect_timeout=3) as connection:
        _, _, consumers = connection.default_channel.queue_declare("rpc-" + name, passive=True)
except Exception as exc:
    sys.exit("unhealthy: %s" % exc)
sys.exit(0 if consumers else "unhealthy: nothing consumes rpc-%s" % name)
