//! `gateway healthcheck`: asks the gateway on this host for `GET /health` and
//! exits 0 on a 200. Container health checks run it, since the runtime image
//! carries no curl.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper_util::rt::TokioIo;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Probes the gateway listening on `http_addr` (via loopback when it listens
/// on all interfaces).
pub async fn run(http_addr: SocketAddr) -> ExitCode {
    let target = if http_addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, http_addr.port()))
    } else {
        http_addr
    };
    match tokio::time::timeout(TIMEOUT, probe(target)).await {
        Ok(Ok(StatusCode::OK)) => ExitCode::SUCCESS,
        Ok(Ok(status)) => {
            eprintln!("unhealthy: GET /health answered {status}");
            ExitCode::FAILURE
        }
        Ok(Err(err)) => {
            eprintln!("unhealthy: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("unhealthy: no answer within {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

async fn probe(target: SocketAddr) -> Result<StatusCode, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(target).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get("/health")
        .header("host", target.to_string())
        .body(Body::empty())?;
    Ok(sender.send_request(request).await?.status())
}
