"""The original system's trips service: trips from one airport to another,
each the hash trip:<id> ({"from", "to"}) in its own Redis.

    nameko run --config config.yaml trips
NAMEKO_SERVICE renames it (the tests run many side by side)."""
import os
import uuid

from nameko.rpc import rpc

from store import Redis


class TripsService:
    name = os.environ.get("NAMEKO_SERVICE", "trips_service")

    redis = Redis()

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def create(self, airport_from_id, airport_to_id):
        trip_id = uuid.uuid4().hex
        self.redis.hset(
            "trip:" + trip_id, mapping={"from": airport_from_id, "to": airport_to_id}
        )
        return trip_id

    @rpc
    def get(self, trip_id):
        trip = self.redis.hgetall("trip:" + trip_id)
        if not trip:
            return None
        return {"from": trip["from"], "to": trip["to"]}
