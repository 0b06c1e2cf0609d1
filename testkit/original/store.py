"""The Redis each service of the original system keeps its records in
(REDIS_URL), as a nameko dependency: a redis-py client, decoding to str."""
import os

import redis
from nameko.extensions import DependencyProvider


class Redis(DependencyProvider):
    def setup(self):
        self.client = redis.Redis.from_url(
            os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
            decode_responses=True,
        )

    def get_dependency(self, worker_ctx):
        return self.client
