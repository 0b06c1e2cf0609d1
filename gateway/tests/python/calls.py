"""Makes gRPC calls through the gateway with the Python client that `make
clients` generates from proto/ (grpcio), and reports what each call ended with.

usage: PYTHONPATH=clients/python python calls.py HOST:PORT < calls.json

calls.json is a list of calls, each an object with
  "method":   "trips.v1.Trips/Create" (a method the generated stub lacks is
              called on the channel, with "request_type"'s message);
  "request":  the request message as JSON (protobuf's JSON mapping);
  "timeout":  seconds (optional; a list cycles through its values);
  "metadata": {"idempotency-key": "..."} (optional);
  "repeat":   how many times to make the call (optional, default 1).
Prints one JSON line per call:
  {"codes": {"OK": n, ...}, "messages": {"DEADLINE_EXCEEDED": [...], ...},
   "response": the last response as JSON, or null}
"""

import itertools
import json
import sys

import grpc
from google.protobuf import json_format

from airports.v1 import airports_pb2, airports_pb2_grpc
from trips.v1 import trips_pb2, trips_pb2_grpc

SERVICES = {
    "trips.v1.Trips": (trips_pb2, trips_pb2_grpc.TripsStub),
    "airports.v1.Airports": (airports_pb2, airports_pb2_grpc.AirportsStub),
}
MESSAGES = {
    f"{module.DESCRIPTOR.package}.{name}": getattr(module, name)
    for module in (trips_pb2, airports_pb2)
    for name in module.DESCRIPTOR.message_types_by_name
}


def callable_for(channel, call):
    """The generated stub's method, or a raw one for a method it lacks."""
    service, method = call["method"].split("/")
    if service in SERVICES:
        module, stub = SERVICES[service]
        methods = module.DESCRIPTOR.services_by_name[service.split(".")[-1]].methods_by_name
        if method in methods:
            request_type = MESSAGES[methods[method].input_type.full_name]
            return getattr(stub(channel), method), request_type
    request_type = MESSAGES[call["request_type"]]
    raw = channel.unary_unary(
        f"/{call['method']}",
        request_serializer=request_type.SerializeToString,
        response_deserializer=lambda data: data,
    )
    return raw, request_type


def run(channel, call):
    method, request_type = callable_for(channel, call)
    request = json_format.ParseDict(call.get("request", {}), request_type())
    timeouts = call.get("timeout")
    if not isinstance(timeouts, list):
        timeouts = [timeouts]
    metadata = tuple(call.get("metadata", {}).items()) or None
    codes, messages, response = {}, {}, None
    for _, timeout in zip(range(call.get("repeat", 1)), itertools.cycle(timeouts)):
        try:
            answer = method(request, timeout=timeout, metadata=metadata)
            code = "OK"
            if not isinstance(answer, bytes):
                response = json_format.MessageToDict(answer)
        except grpc.RpcError as err:
            code = err.code().name
            seen = messages.setdefault(code, [])
            if err.details() not in seen and len(seen) < 5:
                seen.append(err.details())
        codes[code] = codes.get(code, 0) + 1
    return {"codes": codes, "messages": messages, "response": response}


def main(address):
    calls = json.load(sys.stdin)
    with grpc.insecure_channel(address) as channel:
        for call in calls:
            print(json.dumps(run(channel, call)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
