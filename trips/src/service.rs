//! `trips.v1.Trips` on Redis: each trip is the hash `trip:<id>` with the
//! fields `from` and `to`.

use airbridge::rpc::CallContext;
use airbridge::store::RecordStore;
use airbridge::trips::v1::trips_server::Trips;
use airbridge::trips::v1::{
    CreateTripRequest, CreateTripResponse, GetTripRequest, GetTripResponse, PingRequest,
    PingResponse, Trip,
};
use airbridge::validate::validate_text;
use tonic::{Request, Response, Status};

/// The key prefix of trips in Redis.
pub const KIND: &str = "trip";

pub struct TripsService {
    store: RecordStore,
}

impl TripsService {
    pub fn new(store: RecordStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Trips for TripsService {
    async fn create(
        &self,
        request: Request<CreateTripRequest>,
    ) -> Result<Response<CreateTripResponse>, Status> {
        let message_id = request
            .extensions()
            .get::<CallContext>()
            .and_then(|c| c.message_id.clone());
        let trip = request.into_inner();
        validate_text("airport_from", &trip.airport_from)?;
        validate_text("airport_to", &trip.airport_to)?;
        let id = self
            .store
            .create(
                message_id.as_deref(),
                &[("from", &trip.airport_from), ("to", &trip.airport_to)],
            )
            .await?;
        Ok(Response::new(CreateTripResponse { id }))
    }

    async fn get(
        &self,
        request: Request<GetTripRequest>,
    ) -> Result<Response<GetTripResponse>, Status> {
        let id = request.into_inner().id;
        let mut fields = self
            .store
            .get(&id)
            .await?
            .ok_or_else(|| Status::not_found("no trip has that id"))?;
        Ok(Response::new(GetTripResponse {
            trip: Some(Trip {
                airport_from: fields.remove("from").unwrap_or_default(),
                airport_to: fields.remove("to").unwrap_or_default(),
                id,
            }),
        }))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            message: "pong".into(),
            store_reachable: self.store.ping().await,
        }))
    }
}
