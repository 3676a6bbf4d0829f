//! Every handler is total: arbitrary methods, paths and JSON (or not-JSON) bodies, sent by
//! an authenticated Admin through the whole router (V1, V2 and admin), never panic and never
//! answer 5xx.

use std::sync::Arc;

use bytes::Bytes;
use finout_auth::{
    Authenticator, NewToken, Role, TokenAdmin, clock::ManualClock, crypto::SecretHasher,
    store::MemoryTokenStore,
};
use finout_mock::Mock;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::Value;
use time::macros::datetime;
use tower::ServiceExt;

/// One request through `app` that must succeed; its JSON body.
async fn send(
    app: &axum::Router,
    method: Method,
    path: &str,
    creds: (&str, &str),
    body: Option<Value>,
) -> Value {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-finout-client-id", creds.0)
        .header("x-finout-secret-key", creds.1)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

/// Any JSON value, a few levels deep, with numbers at the edges of i64 and f64.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            Just(-1i64),
            any::<i64>()
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 _-]{0,12}".prop_map(Value::String),
        // Replaced by a view of the caller's account, so that queries reach the costs.
        Just(Value::String("VIEW".to_owned())),
        prop::sample::select(vec![
            "vendor",
            "service",
            "netAmortizedCost",
            "listCost",
            "Admin",
            "day",
            "sum",
            "amortizedCost",
            "billing_dimension",
            "oneOf",
            "exists",
            "AWS"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("viewId".to_owned()),
                        Just("date".to_owned()),
                        Just("unixTimeMillSecondsStart".to_owned()),
                        Just("unixTimeMillSecondsEnd".to_owned()),
                        Just("costType".to_owned()),
                        Just("groupBy".to_owned()),
                        Just("name".to_owned()),
                        Just("rules".to_owned()),
                        Just("defaultValue".to_owned()),
                        Just("unixTimeMillisecondsStart".to_owned()),
                        Just("timeInterval".to_owned()),
                        Just("interval".to_owned()),
                        Just("measurements".to_owned()),
                        Just("dimensions".to_owned()),
                        Just("filters".to_owned()),
                        Just("AND".to_owned()),
                        Just("OR".to_owned()),
                        Just("operator".to_owned()),
                        Just("value".to_owned()),
                        Just("type".to_owned()),
                        Just("key".to_owned()),
                        Just("costCenter".to_owned()),
                        Just("rowLimit".to_owned()),
                        Just("timeframe".to_owned()),
                        Just("versionMetadata".to_owned()),
                        Just("mergeValuesAndMetadata".to_owned()),
                        Just("description".to_owned()),
                        Just("role".to_owned()),
                        Just("roles".to_owned()),
                        Just("email".to_owned()),
                        Just("dataAccess".to_owned()),
                        Just("expiresInMinutes".to_owned()),
                        "[a-z]{1,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("v1".to_owned()),
        Just("v2".to_owned()),
        Just("data".to_owned()),
        Just("cost-usage".to_owned()),
        Just("versions".to_owned()),
        Just("admin".to_owned()),
        Just("view".to_owned()),
        Just("cost".to_owned()),
        Just("query-by-view".to_owned()),
        Just("virtual-tags".to_owned()),
        Just("megabill".to_owned()),
        Just("query-language".to_owned()),
        Just("keys".to_owned()),
        Just("values".to_owned()),
        Just("api-tokens".to_owned()),
        Just("personal-tokens".to_owned()),
        Just("users".to_owned()),
        Just("roles".to_owned()),
        Just("whoami".to_owned()),
        Just("healthz".to_owned()),
        Just("metrics".to_owned()),
        "[A-Za-z0-9%._~-]{0,12}",
    ];
    let random = prop::collection::vec(segment, 0..6).prop_map(|s| format!("/{}", s.join("/")));
    // The served routes, with arbitrary ids in their parameters.
    // Ids: made up (with percent signs: invalid UTF-8 once decoded), or a placeholder for
    // the tag, version or query each case creates first.
    let id = || {
        prop_oneof![
            2 => "[A-Za-z0-9%._~-]{1,40}",
            1 => Just("TAG".to_owned()),
            1 => Just("VERSION".to_owned()),
            1 => Just("QUERY".to_owned()),
            1 => Just("%FF%FE".to_owned()),
        ]
    };
    let served = (
        prop::sample::select(vec![
            "/v1/view",
            "/v1/cost/query-by-view",
            "/v1/virtual-tags",
            "/v1/virtual-tags/{a}",
            "/v1/megabill/query-language/keys",
            "/v1/megabill/query-language/values/{a}/{b}",
            "/v1/virtual-tags/{a}/metadata",
            "/v1/cost-guard/scans",
            "/v1/cost-guard/scans-recommendations",
            "/v1/endpoints",
            "/v2/query-language/keys",
            "/v2/megabill/query-language/keys",
            "/v2/query-language/values/{a}/{b}",
            "/v2/query-language/values/AWS/{b}?type={a}",
            "/v2/data/cost-usage/generate-query",
            "/v2/data/cost-usage/{a}/status",
            "/v2/data/cost-usage/{a}/results?pageSize={b}&cursor={a}",
            "/v2/virtual-tags",
            "/v2/virtual-tags?setAsLive={a}",
            "/v2/virtual-tags/{a}",
            "/v2/virtual-tags/{a}/versions?pageSize={b}&from={a}&sortDirection={b}",
            "/v2/virtual-tags/{a}/versions/{b}",
            "/v2/virtual-tags/{a}/metadata",
            "/admin/whoami",
            "/admin/api-tokens",
            "/admin/api-tokens/{a}",
            "/admin/personal-tokens",
            "/admin/personal-tokens/{a}",
            "/admin/users",
            "/admin/users/{a}/roles",
            "/admin/users/{a}",
            "/healthz",
            "/metrics",
        ]),
        id(),
        id(),
    )
        .prop_map(|(template, a, b)| template.replace("{a}", &a).replace("{b}", &b));
    // The routes of what each case creates first, with the right ids in place.
    let stateful = (
        prop::sample::select(vec![
            "/v2/virtual-tags/TAG",
            "/v2/virtual-tags/TAG?setAsLive={a}",
            "/v2/virtual-tags/TAG/metadata",
            "/v2/virtual-tags/TAG/versions?pageSize={b}&cursor=VERSION&sortDirection={a}",
            "/v2/virtual-tags/TAG/versions/VERSION",
            "/v2/data/cost-usage/QUERY/status",
            "/v2/data/cost-usage/QUERY/results?pageSize={b}&cursor={a}",
            "/v2/query-language/values/Virtual%20Tags/TAG",
            "/v1/virtual-tags/TAG",
            "/v1/virtual-tags/TAG/metadata",
        ]),
        prop_oneof!["[0-9]{1,6}", "[a-z%]{0,6}"],
        prop_oneof!["[0-9]{1,6}", "[a-z%]{0,6}"],
    )
        .prop_map(|(template, a, b)| template.replace("{a}", &a).replace("{b}", &b));
    prop_oneof![3 => served, 2 => stateful, 1 => random]
}

/// Instants at the edges: overflow, the 1970 and 9999 bounds, seconds and milliseconds.
fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        Just(-1i64),
        Just(99_999_999_999i64),
        Just(100_000_000_000i64),
        Just(253_402_300_799_999i64),
        Just(253_402_300_800_000i64),
        1_600_000_000_000i64..1_800_000_000_000i64,
        1_600_000_000i64..1_800_000_000i64,
        any::<i64>(),
    ]
}

/// A `query-by-view` body shaped like a client's, with every field at its edges.
fn query_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(Value::from("VIEW")), json()],
        prop_oneof![
            Just(None),
            (instant(), instant()).prop_map(|(a, b)| Some(serde_json::json!({
                "unixTimeMillSecondsStart": a, "unixTimeMillSecondsEnd": b
            }))),
            json().prop_map(Some),
        ],
        prop::option::of(prop_oneof![
            prop::sample::select(vec![
                "netAmortizedCost",
                "listCost",
                "fairShareCost",
                "nope"
            ])
            .prop_map(Value::from),
            json(),
        ]),
        prop::option::of(prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec!["vendor", "Service", "region", "colour", ""]),
                0..3
            )
            .prop_map(|v| serde_json::json!(v)),
            json(),
        ]),
    )
        .prop_map(|(view, date, cost_type, group_by)| {
            let mut body = serde_json::Map::new();
            body.insert("viewId".into(), view);
            if let Some(date) = date {
                body.insert("date".into(), date);
            }
            if let Some(c) = cost_type {
                body.insert("costType".into(), c);
            }
            if let Some(g) = group_by {
                body.insert("groupBy".into(), g);
            }
            Value::Object(body)
        })
}

/// A `generate-query` body shaped like a connector's, with every field at its edges.
fn cost_usage_body() -> impl Strategy<Value = Value> {
    (
        (instant(), instant()),
        prop_oneof![
            prop::sample::select(vec!["day", "week", "month", "hour"]).prop_map(Value::from),
            json()
        ],
        prop_oneof![
            prop::collection::vec(
                (
                    prop::sample::select(vec!["amortizedCost", "usageAmount", "listCost", "x"]),
                    prop::sample::select(vec!["sum", "avg", "max", "median"]),
                )
                    .prop_map(|(t, o)| serde_json::json!({"type": t, "operator": o})),
                0..7
            )
            .prop_map(Value::Array),
            json(),
        ],
        prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec!["service", "region", "namespace", "vendor", "nope"])
                    .prop_map(|k| serde_json::json!({"costCenter": "", "key": k})),
                0..4
            )
            .prop_map(Value::Array),
            json(),
        ],
        prop::option::of(json()),
        prop::option::of(prop_oneof![(0u64..200_000).prop_map(Value::from), json()]),
    )
        .prop_map(
            |((a, b), interval, measurements, dimensions, filters, rows)| {
                let mut body = serde_json::json!({
                    "date": {"unixTimeMillisecondsStart": a, "unixTimeMillisecondsEnd": b},
                    "timeInterval": {"interval": interval},
                    "measurements": measurements,
                    "dimensions": dimensions,
                });
                if let Some(f) = filters {
                    body["filters"] = f;
                }
                if let Some(r) = rows {
                    body["rowLimit"] = r;
                }
                body
            },
        )
}

/// Whether a 400's message shows the deserializer rather than the API: its framing, a
/// position in the text, or a Rust type name.
fn parser_text(message: &str) -> bool {
    const RUST: [&str; 18] = [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "String", "Vec", "Option", "HashMap",
    ];
    let words = || message.split(|c: char| !c.is_ascii_alphanumeric());
    message.contains("Failed to deserialize")
        || message.contains("line 1 column")
        || message.contains(" at line ")
        || message.contains("struct ")
        || message.contains("enum ")
        || message.contains("::")
        || words().any(|w| RUST.contains(&w))
}

/// The names a 400 may name: every key of the body sent (at any depth), the query's and the
/// path's parameters, and the API's own fields (a missing one is named too).
fn names_a_field(message: &str, path: &str, sent: Option<&Value>) -> bool {
    const API_FIELDS: [&str; 34] = [
        "scanId",
        "costCenter",
        "cursor",
        "from",
        "to",
        "interval",
        "key",
        "operator",
        "pageSize",
        "setAsLive",
        "sortDirection",
        "graceSeconds",
        "viewId",
        "date",
        "costType",
        "groupBy",
        "name",
        "rules",
        "defaultValue",
        "timeInterval",
        "measurements",
        "dimensions",
        "filters",
        "rowLimit",
        "versionMetadata",
        "metadata",
        "description",
        "role",
        "roles",
        "email",
        "dataAccess",
        "expiresInMinutes",
        "type",
        "configuration",
    ];
    fn keys(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    into.push(k.clone());
                    keys(v, into);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, into)),
            _ => {}
        }
    }
    let mut names: Vec<String> = API_FIELDS.iter().map(|s| s.to_string()).collect();
    if let Some(sent) = sent {
        keys(sent, &mut names);
    }
    if let Some((_, query)) = path.split_once('?') {
        names.extend(
            query
                .split('&')
                .filter_map(|p| p.split('=').next())
                .map(str::to_owned),
        );
    }
    // The route's parameters, by the names the routes give them.
    names.extend(["id", "clientId", "costCenter", "key", "queryId", "version"].map(String::from));
    message.starts_with("the body")
        || names.iter().filter(|n| !n.is_empty()).any(|n| {
            message
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == n)
        })
}

/// A request: method, path and body (`None`: no body).
fn request() -> impl Strategy<Value = (Method, String, Option<String>)> {
    let body = prop_oneof![
        json().prop_map(|v| Some(v.to_string())),
        "[^\u{0}]{0,40}".prop_map(Some),
        Just(None),
    ];
    prop_oneof![
        2 => query_body().prop_map(|b| (Method::POST, "/v1/cost/query-by-view".to_owned(), Some(b.to_string()))),
        2 => cost_usage_body().prop_map(|b| (Method::POST, "/v2/data/cost-usage/generate-query".to_owned(), Some(b.to_string()))),
        5 => (method(), path(), body),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_request_panics_or_answers_5xx((method, path, body) in request()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = Arc::new(MemoryTokenStore::new());
            let fast = SecretHasher::with_params(64, 1, 1).unwrap();
            let auth = Authenticator::builder(store.clone()).hasher(fast.clone()).build();
            let admin = TokenAdmin::new(store).with_hasher(fast).with_authenticator(auth.clone());
            let account = admin.create_account("Acme").await.unwrap();
            let user = admin.add_user(account.id, "admin@acme.test", vec![Role::Admin]).await.unwrap();
            let token = admin
                .issue_personal_token(account.id, user.id, NewToken::new("admin", Role::Admin))
                .await
                .unwrap();
            let view = finout_mock::fixtures::default_views(account.id)[0].id.clone();
            let clock = ManualClock::new(datetime!(2026-11-29 12:00 UTC));
            let app = Mock::new(admin, auth).clock(clock.clone()).router();
            let creds = (token.client_id.as_str(), token.secret_key.expose_secret());
            // State for the stateful handlers: a tag with metadata and two versions, and a
            // completed query.
            let tag = serde_json::json!({"name": "T", "defaultValue": "d",
                "rules": [{"to": "a", "filters": {}}, {"to": "b", "filters": {}}]});
            let tag = send(&app, Method::POST, "/v2/virtual-tags", creds, Some(tag)).await;
            let tag_id = tag["data"]["id"].as_str().unwrap().to_owned();
            let draft_path = format!("/v2/virtual-tags/{tag_id}?setAsLive=false");
            let draft = serde_json::json!({"name": "T2", "defaultValue": "d", "rules": []});
            send(&app, Method::PUT, &draft_path, creds, Some(draft)).await;
            let meta = serde_json::json!({"a": {"groups": ["g"], "customMetadata": {"k": "v"}}});
            send(&app, Method::PUT, &format!("/v2/virtual-tags/{tag_id}/metadata"), creds, Some(meta)).await;
            let versions = send(&app, Method::GET, &format!("/v2/virtual-tags/{tag_id}/versions"), creds, None).await;
            let version_id = versions["data"][0]["id"].as_str().unwrap().to_owned();
            let query = serde_json::json!({
                "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64, "unixTimeMillisecondsEnd": 1_717_286_400_000_i64},
                "timeInterval": {"interval": "day"},
                "measurements": [{"type": "amortizedCost"}],
                "dimensions": [{"costCenter": "Virtual Tags", "key": tag_id}, {"costCenter": "AWS", "key": "service"}]});
            let query = send(&app, Method::POST, "/v2/data/cost-usage/generate-query", creds, Some(query)).await;
            let query_id = query["data"]["queryId"].as_str().unwrap().to_owned();
            clock.advance(time::Duration::seconds(10));
            let path = path
                .replace("TAG", &tag_id)
                .replace("VERSION", &version_id)
                .replace("QUERY", &query_id);
            let mut request = Request::builder()
                .method(method.clone())
                .uri(path.as_str())
                .header("x-finout-client-id", token.client_id.as_str())
                .header("x-finout-secret-key", token.secret_key.expose_secret());
            let sent = body.clone();
            let body = match body {
                Some(text) => {
                    request = request.header("content-type", "application/json");
                    Full::new(Bytes::from(text.replace("\"VIEW\"", &format!("\"{view}\""))))
                }
                None => Full::default(),
            };
            let Ok(request) = request.body(body) else {
                return Ok(()); // a path `http` itself refuses never reaches a server
            };
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            prop_assert!(!status.is_server_error(), "{method} {path}: {status} {bytes:?}");
            prop_assert!(request_id.is_some(), "{method} {path}: {status} without x-request-id");
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_client_error() {
                prop_assert!(answer["error"].is_string() && answer["requestId"].is_string(), "{method} {path}: {status} {bytes:?}");
            }
            if answer.get("requestId").is_some() {
                prop_assert_eq!(answer["requestId"].as_str(), request_id.as_deref(), "{} {}: the header and the body name one id", method, path);
            }
            if status == 400 {
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                let message = body["message"].as_str().unwrap_or_default();
                let sent: Option<Value> = sent.as_deref().and_then(|t| serde_json::from_str(t).ok());
                prop_assert!(!parser_text(message), "{method} {path}: parser text in {message:?}");
                prop_assert!(
                    names_a_field(message, &path, sent.as_ref()),
                    "{method} {path}: {message:?} names no field of {sent:?}"
                );
            }
            Ok(())
        })?;
    }
}
