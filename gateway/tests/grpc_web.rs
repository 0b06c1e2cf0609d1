//! gRPC-Web on the gateway's gRPC port, as a browser client generated from
//! proto/ would call it: requests built from the generated messages, framed
//! by hand (binary `application/grpc-web+proto` and base64
//! `application/grpc-web-text+proto`) over HTTP/1.1, and CORS as
//! `GRPC_WEB_ORIGINS` allows.

use std::collections::BTreeMap;

use airbridge::trips::v1::{
    CreateTripRequest, CreateTripResponse, GetTripRequest, GetTripResponse,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use testkit::Stack;

const APP: &str = "https://app.example.com";

#[derive(Clone, Copy, Debug)]
enum Mode {
    Binary,
    Text,
}

impl Mode {
    fn content_type(self) -> &'static str {
        match self {
            Mode::Binary => "application/grpc-web+proto",
            Mode::Text => "application/grpc-web-text+proto",
        }
    }
}

/// What a gRPC-Web call came back with.
struct WebAnswer {
    http: StatusCode,
    headers: HeaderMap,
    /// The data frames' payloads.
    messages: Vec<Vec<u8>>,
    /// The trailer frame's fields, or the headers' for a trailers-only answer.
    trailers: BTreeMap<String, String>,
}

impl WebAnswer {
    fn grpc_status(&self) -> &str {
        self.trailers.get("grpc-status").map_or("", String::as_str)
    }

    fn message<M: Message + Default>(&self) -> M {
        assert_eq!(self.messages.len(), 1, "one message: {:?}", self.trailers);
        M::decode(self.messages[0].as_slice()).unwrap()
    }
}

/// One length-prefixed frame: flag, big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// Base64 that may be several padded pieces one after another (one per frame).
fn decode_pieces(text: &[u8]) -> Vec<u8> {
    text.chunks(4)
        .flat_map(|quad| STANDARD.decode(quad).expect("base64"))
        .collect()
}

async fn web_call(
    stack: &Stack,
    mode: Mode,
    origin: Option<&str>,
    method: &str,
    request: impl Message,
) -> WebAnswer {
    let mut body = frame(0, &request.encode_to_vec());
    if let Mode::Text = mode {
        body = STANDARD.encode(body).into_bytes();
    }
    let mut call = stack
        .client
        .post(format!("http://{}/{method}", stack.gateway.grpc))
        .header("content-type", mode.content_type())
        .header("accept", mode.content_type())
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(origin) = origin {
        call = call.header("origin", origin);
    }
    let response = call.send().await.expect("the gRPC port answers HTTP/1.1");
    let (http, headers) = (response.status(), response.headers().clone());
    let mut bytes = response.bytes().await.unwrap().to_vec();
    if let Mode::Text = mode {
        bytes = decode_pieces(&bytes);
    }
    let mut answer = WebAnswer {
        http,
        messages: Vec::new(),
        trailers: BTreeMap::new(),
        headers,
    };
    for name in ["grpc-status", "grpc-message"] {
        if let Some(value) = answer.headers.get(name) {
            let value = value.to_str().unwrap().to_owned();
            answer.trailers.insert(name.to_owned(), value);
        }
    }
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let (flag, len) = (rest[0], u32::from_be_bytes(rest[1..5].try_into().unwrap()));
        let (payload, after) = rest[5..].split_at(len as usize);
        if flag & 0x80 == 0 {
            answer.messages.push(payload.to_vec());
        } else {
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    answer.trailers.insert(name, value.trim().to_owned());
                }
            }
        }
        rest = after;
    }
    answer
}

#[tokio::test]
async fn binary_and_text_modes_create_and_read() {
    let stack = Stack::builder("grpc-web-modes")
        .gateway_env("GRPC_WEB_ORIGINS", APP)
        .start()
        .await;
    for mode in [Mode::Binary, Mode::Text] {
        let created = web_call(
            &stack,
            mode,
            Some(APP),
            "trips.v1.Trips/Create",
            CreateTripRequest {
                airport_from: "EZE".into(),
                airport_to: format!("{mode:?}"),
            },
        )
        .await;
        assert_eq!(created.http, StatusCode::OK);
        assert_eq!(
            created.grpc_status(),
            "0",
            "{mode:?}: {:?}",
            created.trailers
        );
        assert_eq!(
            created.headers["content-type"].to_str().unwrap(),
            mode.content_type()
        );
        // CORS for the allowed page, with what a browser needs to read.
        assert_eq!(created.headers["access-control-allow-origin"], APP);
        let exposed = created.headers["access-control-expose-headers"]
            .to_str()
            .unwrap();
        assert!(exposed.contains("grpc-status"), "{exposed}");
        let id = created.message::<CreateTripResponse>().id;

        let got = web_call(
            &stack,
            mode,
            None,
            "trips.v1.Trips/Get",
            GetTripRequest { id: id.clone() },
        )
        .await;
        assert_eq!(got.grpc_status(), "0");
        let trip = got.message::<GetTripResponse>().trip.unwrap();
        assert_eq!(trip.airport_to, format!("{mode:?}"));
        // The same trip through REST.
        let rest = stack.get(&format!("/trip/{id}")).await.unwrap();
        let rest = rest.text().await.unwrap();
        assert_eq!(
            rest,
            format!(r#"{{"trip": {{"from": "EZE", "to": "{mode:?}"}}}}"#)
        );

        let missing = web_call(
            &stack,
            mode,
            None,
            "trips.v1.Trips/Get",
            GetTripRequest { id: "0".repeat(32) },
        )
        .await;
        assert_eq!(
            missing.grpc_status(),
            "5",
            "NOT_FOUND: {:?}",
            missing.trailers
        );
        assert!(missing.messages.is_empty());
    }
}

async fn preflight(stack: &Stack, origin: &str) -> HeaderMap {
    let response = stack
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/trips.v1.Trips/Create", stack.gateway.grpc),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,x-user-agent,grpc-timeout",
        )
        .send()
        .await
        .unwrap();
    response.headers().clone()
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let stack = Stack::builder("grpc-web-cors")
        .gateway_env("GRPC_WEB_ORIGINS", format!("{APP}, http://localhost:3000"))
        .start()
        .await;
    let allowed = preflight(&stack, "http://localhost:3000").await;
    assert_eq!(
        allowed["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let headers = allowed["access-control-allow-headers"].to_str().unwrap();
    for header in ["content-type", "x-grpc-web", "grpc-timeout"] {
        assert!(headers.contains(header), "{header} in {headers}");
    }
    let refused = preflight(&stack, "https://evil.example.com").await;
    assert!(
        !refused.contains_key("access-control-allow-origin"),
        "{refused:?}"
    );

    // Unset: same-origin only, no CORS headers at all.
    let default = Stack::start("grpc-web-same-origin").await;
    let headers = preflight(&default, APP).await;
    assert!(
        !headers.contains_key("access-control-allow-origin"),
        "{headers:?}"
    );
    // gRPC-Web itself is still served (a same-origin page, or no browser).
    let answer = web_call(
        &default,
        Mode::Binary,
        None,
        "trips.v1.Trips/Get",
        GetTripRequest { id: "x".into() },
    )
    .await;
    assert_eq!(answer.grpc_status(), "5");
}
