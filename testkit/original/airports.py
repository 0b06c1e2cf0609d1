"""The original system's airports service: airports by name, each the hash
airport:<id> ({"name"}) in its own Redis.

    nameko run --config config.yaml airports
NAMEKO_SERVICE renames it (the tests run many side by side)."""
import os
import uuid

from nameko.rpc import rpc

from store import Redis


class AirportsService:
    name = os.environ.get("NAMEKO_SERVICE", "airports_service")

    redis = Redis()

    @rpc
    def ping(self):
        return "pong"

    @rpc
    def create(self, airport):
        airport_id = uuid.uuid4().hex
        self.redis.hset("airport:" + airport_id, mapping={"name": airport})
        return airport_id

    @rpc
    def get(self, airport_id):
        return self.redis.hget("airport:" + airport_id, "name")
