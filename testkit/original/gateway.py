"""The original system's gateway: the REST API on WEB_SERVER_ADDRESS, each
route one call to trips_service or airports_service (TRIPS_SERVICE and
AIRPORTS_SERVICE rename them; NAMEKO_SERVICE renames the gateway).

    nameko run --config config.yaml gateway
It prints the address it listens on (for WEB_SERVER_ADDRESS=...:0)."""
import json
import os

from nameko.rpc import RpcProxy
from nameko.web import server
from nameko.web.handlers import http

_start = server.WebServer.start


def _start_and_say_where(self):
    _start(self)
    host, port = self._sock.getsockname()[:2]
    print("listening on %s:%d" % (host, port), flush=True)


server.WebServer.start = _start_and_say_where


class GatewayService:
    name = os.environ.get("NAMEKO_SERVICE", "gateway")

    trips = RpcProxy(os.environ.get("TRIPS_SERVICE", "trips_service"))
    airports = RpcProxy(os.environ.get("AIRPORTS_SERVICE", "airports_service"))

    @http("GET", "/ping")
    def ping(self, request):
        return "Pong!"

    @http("GET", "/trip-ping")
    def trip_ping(self, request):
        return json.dumps({"Trip": self.trips.ping()})

    @http("GET", "/airport-ping")
    def airport_ping(self, request):
        return json.dumps({"Airport": self.airports.ping()})

    @http("POST", "/airport")
    def create_airport(self, request):
        body = json.loads(request.get_data(as_text=True))
        return self.airports.create(body["airport"])

    @http("GET", "/airport/<string:airport_id>")
    def get_airport(self, request, airport_id):
        return json.dumps({"airport": self.airports.get(airport_id)})

    @http("POST", "/trip")
    def create_trip(self, request):
        body = json.loads(request.get_data(as_text=True))
        return self.trips.create(body["airport_from"], body["airport_to"])

    @http("GET", "/trip/<string:trip_id>")
    def get_trip(self, request, trip_id):
        return json.dumps({"trip": self.trips.get(trip_id)})
