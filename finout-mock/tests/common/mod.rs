//! What the mock's tests share: one request over a fresh connection.

#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One request over a fresh connection: status, headers and body bytes.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    creds: Option<(&str, &str)>,
    body: Option<Value>,
) -> (u16, HeaderMap, Bytes) {
    Connection::open(addr)
        .await
        .send(method, path, creds, body.as_ref())
        .await
}

/// One request: status and body bytes.
pub async fn call_raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    creds: Option<(&str, &str)>,
    body: Option<Value>,
) -> (u16, Bytes) {
    let (status, _, bytes) = send(addr, method, path, creds, body).await;
    (status, bytes)
}

/// One request: status and JSON body (Null if none).
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    creds: Option<(&str, &str)>,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, bytes) = send(addr, method, path, creds, body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One request: status, headers and JSON body (Null if none).
pub async fn call_full(
    addr: SocketAddr,
    method: Method,
    path: &str,
    creds: Option<(&str, &str)>,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let (status, headers, bytes) = send(addr, method, path, creds, body).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

/// One kept-alive connection, for many requests in a row without a handshake each.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Connection { sender }
    }

    /// One request: status, headers and body bytes.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        creds: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> (u16, HeaderMap, Bytes) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "mock");
        if let Some((id, secret)) = creds {
            request = request
                .header("x-finout-client-id", id)
                .header("x-finout-secret-key", secret);
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::default(),
        };
        self.sender.ready().await.unwrap();
        let response = self
            .sender
            .send_request(request.body(body).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status.as_u16(), parts.headers, bytes)
    }

    /// One request: status, headers and JSON body (Null if none).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        creds: Option<(&str, &str)>,
        body: Option<&Value>,
    ) -> (u16, HeaderMap, Value) {
        let (status, headers, bytes) = self.send(method, path, creds, body).await;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }
}
