"""nameko's own ClusterRpcProxy calling every method of a trips and an
airports service (argv: AMQP URI, trips name, airports name), every error
case too. Prints one JSON line per call: {"call", "result"} or {"call",
"raised", "exc_type", "value"}; then deletes its reply queue."""
import json
import sys

from kombu import Connection
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

uri, trips_name, airports_name = sys.argv[1:4]


def run(proxy, label, call):
    try:
        line = {"call": label, "result": call()}
    except RemoteError as exc:
        line = {"call": label, "raised": "RemoteError", "exc_type": exc.exc_type, "value": exc.value}
    except Exception as exc:  # MethodNotFound, IncorrectSignature, ...
        line = {"call": label, "raised": type(exc).__name__, "exc_type": None, "value": str(exc)}
    print(json.dumps(line), flush=True)
    return line.get("result")


with ClusterRpcProxy({"AMQP_URI": uri}, timeout=10) as cluster:
    trips = getattr(cluster, trips_name)
    airports = getattr(cluster, airports_name)
    run(cluster, "airports.ping()", lambda: airports.ping())
    airport = run(cluster, "airports.create('Ezeiza')", lambda: airports.create("Ezeiza"))
    run(cluster, "airports.get(id)", lambda: airports.get(airport))
    run(cluster, "airports.get(airport_id=id)", lambda: airports.get(airport_id=airport))
    named = run(cluster, "airports.create(airport='Córdoba ✈')", lambda: airports.create(airport="Córdoba ✈"))
    run(cluster, "airports.get(id) non-ASCII", lambda: airports.get(named))
    run(cluster, "airports.create(name='Jujuy')", lambda: airports.create(name="Jujuy"))
    run(cluster, "airports.get(unknown)", lambda: airports.get("0123456789abcdef0123456789abcdef"))
    run(cluster, "trips.ping()", lambda: trips.ping())
    trip = run(cluster, "trips.create('EZE', 'CPC')", lambda: trips.create("EZE", "CPC"))
    run(cluster, "trips.get(id)", lambda: trips.get(trip))
    keywords = run(
        cluster, "trips.create(airport_from_id=, airport_to_id=)",
        lambda: trips.create(airport_from_id="AEP", airport_to_id="MDZ"),
    )
    run(cluster, "trips.get(trip_id=id)", lambda: trips.get(trip_id=keywords))
    run(cluster, "trips.create(airport_from=, airport_to=)", lambda: trips.create(airport_from="BRC", airport_to="USH"))
    run(cluster, "trips.get(unknown)", lambda: trips.get("nope"))
    # Every error case.
    run(cluster, "trips.fly()", lambda: trips.fly())
    run(cluster, "trips.create('EZE')", lambda: trips.create("EZE"))
    run(cluster, "trips.create('A', 'B', 'C')", lambda: trips.create("A", "B", "C"))
    run(cluster, "trips.create('A', 'B', seats=2)", lambda: trips.create("A", "B", seats=2))
    run(cluster, "trips.create('A', airport_from_id='B')", lambda: trips.create("A", airport_from_id="B"))
    run(cluster, "trips.ping(1)", lambda: trips.ping(1))
    run(cluster, "trips.create('', 'CPC')", lambda: trips.create("", "CPC"))
    run(cluster, "trips.create('E\\nZE', 'CPC')", lambda: trips.create("E\nZE", "CPC"))
    run(cluster, "airports.create(5)", lambda: airports.create(5))
    run(cluster, "airports.create('x' * 257)", lambda: airports.create("x" * 257))
    run(cluster, "airports.get(None)", lambda: airports.get(None))
    reply_queue = cluster._reply_listener.queue.name

with Connection(uri) as connection:
    connection.default_channel.queue_delete(reply_queue)
