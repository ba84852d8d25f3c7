//! Requests to an app given as a command: proxied over HTTP/1.1 to the
//! process listening on 127.0.0.1:$PORT.

use bytes::Bytes;
use capstan_runtime::RequestBody;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;
use crate::errors::error_response;
use crate::forwarded::Client;

/// A reverse proxy to one local port, with pooled keep-alive connections.
#[derive(Clone)]
pub struct Proxy {
    port: u16,
    client: HttpClient<HttpConnector, BoxBody<Bytes, std::io::Error>>,
}

impl Proxy {
    /// A proxy to 127.0.0.1:`port`.
    pub fn new(port: u16) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = HttpClient::builder(TokioExecutor::new()).build(connector);
        Proxy { port, client }
    }

    /// Forwards the request (its body already read) and streams the answer back.
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        body: RequestBody,
        client: &Client,
    ) -> Response<Body> {
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let Ok(uri) = format!("http://127.0.0.1:{}{}", self.port, path).parse::<Uri>() else {
            return error_response(StatusCode::BAD_REQUEST, "Bad request target.");
        };
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let body_len = body.len();
        let mut request = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(outgoing(body))
            .expect("method and uri are valid");
        let headers = request.headers_mut();
        for (name, value) in parts.headers.iter() {
            // SECURITY: forwarding headers from the client are replaced, not passed on.
            if matches!(
                name.as_str(),
                "x-forwarded-for"
                    | "x-forwarded-proto"
                    | "x-real-ip"
                    | "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "te"
                    | "transfer-encoding"
                    | "upgrade"
            ) {
                continue;
            }
            headers.append(name, value.clone());
        }
        if let Some(host) = host {
            headers.insert(header::HOST, host);
        }
        // The body is whole, so its length is known even if the client sent
        // it chunked; a streamed spilled body would otherwise go out chunked.
        if body_len > 0 {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        }
        let set = |headers: &mut http::HeaderMap, name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(headers, "x-forwarded-for", &client.forwarded_for);
        set(headers, "x-forwarded-proto", client.scheme);
        set(headers, "x-real-ip", &client.ip.to_string());
        match self.client.request(request).await {
            Ok(response) => {
                let (mut parts, incoming) = response.into_parts();
                for hop in [
                    "connection",
                    "keep-alive",
                    "transfer-encoding",
                    "upgrade",
                    "proxy-connection",
                ] {
                    parts.headers.remove(hop);
                }
                let body = incoming.map_err(std::io::Error::other).boxed_unsync();
                Response::from_parts(parts, body)
            }
            Err(error) => {
                tracing::warn!(port = self.port, %error, "the app's web process did not answer");
                error_response(StatusCode::BAD_GATEWAY, "The application is not answering.")
            }
        }
    }
}

/// The request body as the proxy sends it: a spilled one is read back from
/// its file a piece at a time, never whole.
fn outgoing(body: RequestBody) -> BoxBody<Bytes, std::io::Error> {
    match body {
        RequestBody::Memory(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed(),
        RequestBody::File(file) => {
            use futures_util::TryStreamExt;
            StreamBody::new(crate::request_body::chunks(file).map_ok(Frame::data)).boxed()
        }
    }
}
