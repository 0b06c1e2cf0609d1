"""Creates and reads a trip and an airport through the gateway's gRPC port
with the Python client that `make clients` generates from proto/.

usage: PYTHONPATH=clients/python python roundtrip.py HOST:PORT
Prints the ids it created as JSON.
"""

import json
import sys

import grpc
from airports.v1 import airports_pb2, airports_pb2_grpc
from trips.v1 import trips_pb2, trips_pb2_grpc


def main(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        trips = trips_pb2_grpc.TripsStub(channel)
        airports = airports_pb2_grpc.AirportsStub(channel)

        trip_id = trips.Create(
            trips_pb2.CreateTripRequest(airport_from="EZE", airport_to="CPC"), timeout=5
        ).id
        trip = trips.Get(trips_pb2.GetTripRequest(id=trip_id), timeout=5).trip
        assert (trip.id, trip.airport_from, trip.airport_to) == (trip_id, "EZE", "CPC"), trip

        airport_id = airports.Create(
            airports_pb2.CreateAirportRequest(name="Ezeiza"), timeout=5
        ).id
        airport = airports.Get(airports_pb2.GetAirportRequest(id=airport_id), timeout=5).airport
        assert (airport.id, airport.name) == (airport_id, "Ezeiza"), airport

        try:
            trips.Get(trips_pb2.GetTripRequest(id="0" * 32), timeout=5)
            raise AssertionError("an unknown trip was found")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err

        try:
            airports.Create(airports_pb2.CreateAirportRequest(name=""), timeout=5)
            raise AssertionError("an empty name was accepted")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err

    print(json.dumps({"trip": trip_id, "airport": airport_id}))


if __name__ == "__main__":
    main(sys.argv[1])
