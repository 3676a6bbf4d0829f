//! The properties the fuzz targets check. Shared by the targets (`fuzz/fuzz_targets/*`,
//! `cargo +nightly fuzz run`) and by `tests/fuzz_corpora.rs`, which replays the committed
//! corpora (`tests/fuzz_corpus/`) on stable.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, CLIENT_ID_HEADER, Credentials, ErrorCode, NewToken, Role,
    SECRET_KEY_HEADER, TokenAdmin, crypto::SecretHasher, model::SecretHash,
    store::MemoryTokenStore,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Service, ServiceExt, service_fn};

const NAMES: [&str; 3] = ["x-finout-client-id", "x-finout-secret-key", "x-other"];

/// Turn bytes into headers: each record is a name selector, a length, then the value.
/// Values `HeaderValue` itself refuses (CR, LF...) are skipped, as no HTTP stack delivers
/// them.
fn headers_from(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    while let [selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (value, next) = tail.split_at(len);
        // A long run of 0xAA stands for a 300-byte value, to reach the length limit.
        let value = if value == [0xAA] {
            vec![b'a'; 300]
        } else {
            value.to_vec()
        };
        let name = HeaderName::from_static(NAMES[usize::from(*selector) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.append(name, value);
        }
        rest = next;
    }
    headers
}

fn visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Header parsing is total and its answer matches the headers.
pub fn header_parsing(data: &[u8]) {
    let headers = headers_from(data);
    let ids = headers.get_all(CLIENT_ID_HEADER).iter().count();
    let secrets = headers.get_all(SECRET_KEY_HEADER).iter().count();
    match Credentials::from_headers(&headers) {
        Ok(c) => {
            assert_eq!((ids, secrets), (1, 1));
            assert!(visible_ascii(c.client_id()) && visible_ascii(c.secret()));
            assert!(format!("{c:?}").contains("[redacted]"));
        }
        Err(e) if ids == 0 || secrets == 0 => assert_eq!(e.code(), ErrorCode::MissingCredentials),
        Err(e) => assert_eq!(e.code(), ErrorCode::MalformedCredentials),
    }
}

fn tiny_hasher() -> SecretHasher {
    let mut caps = finout_auth::crypto::CostCaps::default();
    caps.max_memory_kib = 64;
    caps.max_iterations = 2;
    caps.max_parallelism = 1;
    SecretHasher::with_params(8, 1, 1)
        .expect("valid params")
        .with_caps(caps)
}

/// Any stored string is parsed and checked against the caps without panicking, and a
/// hash over the caps is never run.
pub fn stored_hash(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (secret, phc) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let phc = String::from_utf8_lossy(phc);
    let hasher = tiny_hasher();
    let outcome = hasher.verify(secret, &SecretHash::from_phc(phc.as_ref()));
    if let Ok(true) = outcome {
        // A match means a genuine argon2id hash within the caps.
        assert!(phc.starts_with("$argon2id$"));
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    client_id: String,
    secret: String,
    authenticator: Authenticator,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = Arc::new(MemoryTokenStore::new());
        // Refusals answered when decided: each input would otherwise wait out the deadline.
        let authenticator = Authenticator::builder(store.clone())
            .hasher(tiny_hasher())
            .uniform_refusals(false)
            .build();
        let admin = TokenAdmin::new(store)
            .with_hasher(tiny_hasher())
            .with_authenticator(authenticator.clone());
        let issued = runtime.block_on(async {
            let account = admin.create_account("fuzz").await.expect("account");
            admin
                .issue_api_token(account.id, None, NewToken::new("fuzz", Role::Basic))
                .await
                .expect("token")
        });
        Fixture {
            runtime,
            client_id: issued.client_id.to_string(),
            secret: issued.secret_key.expose_secret().to_owned(),
            authenticator,
        }
    })
}

/// Whole requests through the layer over a memory store: only documented answers, the
/// secret never reaches the inner service, and only the real pair is admitted.
pub fn request(data: &[u8]) {
    let f = fixture();
    let (flags, data) = data.split_first().unwrap_or((&0, data));
    let mut headers = headers_from(data);
    // Let the fuzzer use the real credentials too, to reach the admitted and cached paths.
    if flags & 1 != 0 {
        headers.append(
            CLIENT_ID_HEADER,
            HeaderValue::from_str(&f.client_id).unwrap(),
        );
    }
    if flags & 2 != 0 {
        headers.append(SECRET_KEY_HEADER, HeaderValue::from_str(&f.secret).unwrap());
    }
    let ids: Vec<_> = headers.get_all(CLIENT_ID_HEADER).iter().cloned().collect();
    let secrets: Vec<_> = headers.get_all(SECRET_KEY_HEADER).iter().cloned().collect();
    let mut request = Request::new(Full::<Bytes>::default());
    *request.headers_mut() = headers;

    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        assert!(
            !req.headers().contains_key(SECRET_KEY_HEADER),
            "secret reached the service"
        );
        Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let mut service = tower::Layer::layer(&AuthLayer::new(f.authenticator.clone()), inner);
    let response = f.runtime.block_on(async {
        service.ready().await.expect("ready");
        service.call(request).await.expect("infallible")
    });
    match response.status() {
        StatusCode::OK => {
            assert_eq!(ids.len(), 1);
            assert_eq!(secrets.len(), 1);
            assert_eq!(ids[0].as_bytes(), f.client_id.as_bytes());
            assert_eq!(secrets[0].as_bytes(), f.secret.as_bytes());
        }
        StatusCode::UNAUTHORIZED
        | StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE => {}
        other => panic!("undocumented status {other}"),
    }
}
