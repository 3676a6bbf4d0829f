//! Hostile input over real HTTP: a hyper server on loopback and a raw TCP client sending
//! what well-behaved HTTP clients refuse to send. Each request gets its documented answer,
//! never a 500 or a panic, and the server keeps serving valid requests afterwards.

mod common;

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use common::Harness;
use finout_auth::{AuthLayer, IssuedToken, Principal, Role};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{ServiceBuilder, service_fn};

async fn serve(h: &Harness) -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .service(service_fn(|req: Request<Incoming>| async move {
            let p = req.extensions().get::<Principal>().cloned().unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                p.client_id().to_string(),
            ))))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// Send raw header lines; answer the status code and body.
async fn raw(addr: SocketAddr, header_lines: &[&[u8]]) -> (u16, String) {
    let mut request = b"GET /x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n".to_vec();
    for line in header_lines {
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn header(name: &str, value: &[u8]) -> Vec<u8> {
    [name.as_bytes(), b": ", value].concat()
}

fn code_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .map(|v| v["error"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn id(t: &IssuedToken) -> &[u8] {
    t.client_id.as_str().as_bytes()
}

fn secret(t: &IssuedToken) -> &[u8] {
    t.secret_key.expose_secret().as_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_get_their_documented_answers_and_the_server_keeps_serving() {
    let h = Harness::new().await;
    let a = h.api_token(Role::Basic).await;
    let b = h.api_token(Role::Basic).await;
    let addr = serve(&h).await;
    let (cid, sk) = ("x-finout-client-id", "x-finout-secret-key");
    let long_256 = vec![b'a'; 256];
    let long_257 = vec![b'a'; 257];
    let huge = vec![b'a'; 8 * 1024];
    let joined = [id(&a), b", ", id(&b)].concat();
    let joined_tight = [id(&a), b",", id(&b)].concat();

    // (what, header lines, expected status, expected code or "" for a non-auth answer)
    let cases: Vec<(&str, Vec<Vec<u8>>, u16, &str)> = vec![
        (
            "valid",
            vec![header(cid, id(&a)), header(sk, secret(&a))],
            200,
            "",
        ),
        (
            "mixed-case names",
            vec![
                header("X-Finout-Client-ID", id(&a)),
                header("X-FINOUT-SECRET-KEY", secret(&a)),
            ],
            200,
            "",
        ),
        ("no headers", vec![], 401, "missing_credentials"),
        (
            "only the id",
            vec![header(cid, id(&a))],
            401,
            "missing_credentials",
        ),
        (
            "duplicate id",
            vec![
                header(cid, id(&a)),
                header(cid, id(&a)),
                header(sk, secret(&a)),
            ],
            401,
            "malformed_credentials",
        ),
        (
            "duplicate secret",
            vec![
                header(cid, id(&a)),
                header(sk, secret(&a)),
                header(sk, secret(&a)),
            ],
            401,
            "malformed_credentials",
        ),
        (
            "empty id",
            vec![header(cid, b""), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "empty secret",
            vec![header(cid, id(&a)), header(sk, b"")],
            401,
            "malformed_credentials",
        ),
        (
            "256-byte id",
            vec![header(cid, &long_256), header(sk, secret(&a))],
            401,
            "invalid_credentials",
        ),
        (
            "257-byte id",
            vec![header(cid, &long_257), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "257-byte secret",
            vec![header(cid, id(&a)), header(sk, &long_257)],
            401,
            "malformed_credentials",
        ),
        (
            "8 KiB id",
            vec![header(cid, &huge), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "8 KiB secret",
            vec![header(cid, id(&a)), header(sk, &huge)],
            401,
            "malformed_credentials",
        ),
        (
            "obs-text in the secret",
            vec![header(cid, id(&a)), header(sk, b"caf\xe9-\xff\x80")],
            401,
            "malformed_credentials",
        ),
        (
            "UTF-8 in the id",
            vec![header(cid, "idé".as_bytes()), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "tab inside",
            vec![header(cid, b"a\tb"), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "space inside",
            vec![header(cid, b"a b"), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "comma-joined ids",
            vec![header(cid, &joined), header(sk, secret(&a))],
            401,
            "malformed_credentials",
        ),
        (
            "comma-joined ids, no space",
            vec![header(cid, &joined_tight), header(sk, secret(&a))],
            401,
            "invalid_credentials",
        ),
        (
            "headers swapped",
            vec![header(cid, secret(&a)), header(sk, id(&a))],
            401,
            "invalid_credentials",
        ),
        (
            "another token's secret",
            vec![header(cid, id(&a)), header(sk, secret(&b))],
            401,
            "invalid_credentials",
        ),
        // httparse refuses control characters in header values: hyper answers 400 itself and
        // the request never reaches the layer.
        (
            "control character",
            vec![header(cid, b"a\x01b"), header(sk, secret(&a))],
            400,
            "",
        ),
        (
            "NUL",
            vec![header(cid, id(&a)), header(sk, b"ab\x00cd")],
            400,
            "",
        ),
        (
            "DEL",
            vec![header(cid, b"ab\x7f"), header(sk, secret(&a))],
            400,
            "",
        ),
    ];

    for (what, lines, status, code) in &cases {
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let (got, body) = raw(addr, &lines).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert_ne!(got, 500, "{what}");
        if !code.is_empty() {
            assert_eq!(code_of(&body), *code, "{what}: {body}");
        }
        // After every hostile request, a valid one still works.
        let (ok, body) = raw(addr, &[&header(cid, id(&b)), &header(sk, secret(&b))]).await;
        assert_eq!(ok, 200, "after {what}: {body}");
        assert_eq!(body, b.client_id.as_str());
    }
}
