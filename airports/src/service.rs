//! `airports.v1.Airports` on Redis: each airport is the hash `airport:<id>`
//! with the field `name`.

use airbridge::airports::v1::airports_server::Airports;
use airbridge::airports::v1::{
    Airport, CreateAirportRequest, CreateAirportResponse, GetAirportRequest, GetAirportResponse,
    PingRequest, PingResponse,
};
use airbridge::rpc::CallContext;
use airbridge::store::RecordStore;
use airbridge::validate::validate_text;
use tonic::{Request, Response, Status};

/// The key prefix of airports in Redis.
pub const KIND: &str = "airport";

pub struct AirportsService {
    store: RecordStore,
}

impl AirportsService {
    pub fn new(store: RecordStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Airports for AirportsService {
    async fn create(
        &self,
        request: Request<CreateAirportRequest>,
    ) -> Result<Response<CreateAirportResponse>, Status> {
        let message_id = request
            .extensions()
            .get::<CallContext>()
            .and_then(|c| c.message_id.clone());
        let name = request.into_inner().name;
        validate_text("name", &name)?;
        let id = self
            .store
            .create(message_id.as_deref(), &[("name", &name)])
            .await?;
        Ok(Response::new(CreateAirportResponse { id }))
    }

    async fn get(
        &self,
        request: Request<GetAirportRequest>,
    ) -> Result<Response<GetAirportResponse>, Status> {
        let id = request.into_inner().id;
        let mut fields = self
            .store
            .get(&id)
            .await?
            .ok_or_else(|| Status::not_found("no airport has that id"))?;
        let name = fields.remove("name").unwrap_or_default();
        Ok(Response::new(GetAirportResponse {
            airport: Some(Airport { id, name }),
        }))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {
            message: "pong".into(),
            store_reachable: self.store.ping().await,
        }))
    }
}
