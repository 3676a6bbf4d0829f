//! Finout's V2 API on the mock, over a real socket, with an injected clock: each operation
//! against the fields Finout documents, the asynchronous cost-and-usage flow and the
//! per-route rate limits (no sleeping: the clock is moved).

mod common;

use std::time::Duration;

use common::{Connection, call, call_full};
use finout_auth::{NewToken, Role, clock::ManualClock};
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::datetime};

const DELAY: Duration = Duration::from_secs(10);

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-29 12:00 UTC))
}

async fn server(clock: &ManualClock) -> MockServer {
    MockServer::builder()
        .clock(clock.clone())
        .query_delay(DELAY)
        .start()
        .await
}

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

fn advance(clock: &ManualClock, by: Duration) {
    clock.advance(time::Duration::try_from(by).unwrap());
}

/// The body a public connector sends (the `costCenter` left empty, as it does).
fn connector_query() -> Value {
    json!({
        "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64,
                 "unixTimeMillisecondsEnd": 1_717_286_400_000_i64},
        "timeInterval": {"interval": "day", "sortDirection": "ascending"},
        "measurements": [{"type": "amortizedCost", "operator": "sum"},
                         {"type": "usageAmount", "operator": "sum"}],
        "dimensions": [{"costCenter": "", "key": "service", "type": "billing_dimension"}],
        "filters": {"AND": []},
        "rowLimit": 100_000
    })
}

fn assert_envelope(body: &Value) {
    assert!(body["requestId"].is_string(), "{body}");
    assert!(
        body["data"].is_object() || body["data"].is_array(),
        "{body}"
    );
}

#[tokio::test]
async fn query_language_keys_and_values_on_both_documented_paths() {
    let clock = clock();
    let s = server(&clock).await;
    let (status, keys) = call(
        s.address(),
        Method::GET,
        "/v2/query-language/keys",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200, "{keys}");
    assert_envelope(&keys);
    let list = keys["data"]["keys"].as_array().unwrap();
    assert!(list.iter().all(|k| k["costCenter"].is_string()
        && k["key"].is_string()
        && k["displayName"].is_string()
        && k["types"].as_array().is_some_and(|t| !t.is_empty())));
    let (_, megabill) = call(
        s.address(),
        Method::GET,
        "/v2/megabill/query-language/keys",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(megabill["data"], keys["data"]);

    let path = "/v2/query-language/values/AWS/service?type=billing_dimension";
    let (status, values) = call(s.address(), Method::GET, path, creds(&s), None).await;
    assert_eq!(status, 200, "{values}");
    assert_eq!(values["data"]["values"], json!(["EC2", "S3", "RDS", "EKS"]));
    let (status, wrong) = call(
        s.address(),
        Method::GET,
        "/v2/query-language/values/AWS/service?type=virtual_tag",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = call(
        s.address(),
        Method::GET,
        "/v2/megabill/query-language/values/AWS/nope",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A virtual tag is a key too, whose values are what it assigns.
    let tag = json!({"name": "Team", "defaultValue": "Untagged",
        "rules": [{"to": "payments", "filters": {}}, {"to": "search", "filters": {}}]});
    let (status, created) = call(
        s.address(),
        Method::POST,
        "/v2/virtual-tags",
        creds(&s),
        Some(tag),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let (_, keys) = call(
        s.address(),
        Method::GET,
        "/v2/query-language/keys",
        creds(&s),
        None,
    )
    .await;
    assert!(
        keys["data"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key"] == id
                && k["costCenter"] == "Virtual Tags"
                && k["types"] == json!(["virtual_tag"])
                && k["displayName"] == "Team")
    );
    let path = format!("/v2/query-language/values/Virtual%20Tags/{id}");
    let (status, values) = call(s.address(), Method::GET, &path, creds(&s), None).await;
    assert_eq!(status, 200, "{values}");
    assert_eq!(
        values["data"]["values"],
        json!(["Untagged", "payments", "search"])
    );
}

#[tokio::test]
async fn a_cost_and_usage_query_is_queued_runs_completes_pages_and_expires() {
    let clock = clock();
    let s = server(&clock).await;
    let (status, generated) = call(
        s.address(),
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(connector_query()),
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    assert_envelope(&generated);
    let id = generated["data"]["queryId"].as_str().unwrap().to_owned();
    let status_path = format!("/v2/data/cost-usage/{id}/status");
    let results_path = format!("/v2/data/cost-usage/{id}/results");
    let status_now = || async {
        let (code, body) = call(s.address(), Method::GET, &status_path, creds(&s), None).await;
        assert_eq!(code, 200, "{body}");
        body["data"].clone()
    };
    let results_error = || async {
        let (code, body) = call(s.address(), Method::GET, &results_path, creds(&s), None).await;
        (code, body["error"].as_str().unwrap_or_default().to_owned())
    };

    assert_eq!(status_now().await, json!({"status": "queued"}));
    assert_eq!(results_error().await, (202, "QUERY_QUEUED".to_owned()));
    advance(&clock, DELAY / 2);
    assert_eq!(status_now().await, json!({"status": "running"}));
    assert_eq!(results_error().await, (202, "QUERY_RUNNING".to_owned()));
    advance(&clock, DELAY / 2);
    let done = status_now().await;
    assert_eq!(done["status"], "completed");
    // Two days (both ends inclusive: 1 June and 2 June 2024) x five values of `service`: the
    // four AWS services, and "N/A" for the line items without one (GCP's, Kubernetes's).
    assert_eq!(done["totalRows"], 10);
    let completed = OffsetDateTime::parse(done["completedAt"].as_str().unwrap(), &Rfc3339).unwrap();
    let expires = OffsetDateTime::parse(done["expiredAt"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(expires - completed, time::Duration::hours(24));

    // Paged by cursor, three at a time.
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{results_path}?pageSize=3&cursor={c}"),
            None => format!("{results_path}?pageSize=3"),
        };
        let (code, page) = call(s.address(), Method::GET, &path, creds(&s), None).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["pagination"]["totalRows"], 10);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        rows.extend(data.iter().cloned());
        if page["pagination"]["hasMore"] == false {
            assert!(page["pagination"].get("nextCursor").is_none());
            break;
        }
        cursor = Some(
            page["pagination"]["nextCursor"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(rows.len(), 10);
    for row in &rows {
        // The columns the connector reads.
        assert!(row["_billing_dimension_service"].is_string(), "{row}");
        assert!(row["amortizedCost_sum"]["amount"].is_number(), "{row}");
        assert!(row["usageAmount_sum"]["unit"].is_string(), "{row}");
        assert!(row["day"].is_string(), "{row}");
    }
    let days: Vec<&str> = rows.iter().map(|r| r["day"].as_str().unwrap()).collect();
    let mut sorted = days.clone();
    sorted.sort();
    assert_eq!(days, sorted, "timeInterval.sortDirection ascending");
    assert_eq!(days[0], "2024-06-01");

    // Kept 24 hours.
    advance(&clock, Duration::from_secs(24 * 3600));
    assert_eq!(status_now().await, json!({"status": "expired"}));
    assert_eq!(results_error().await, (410, "RESULTS_EXPIRED".to_owned()));
    // Forgotten a day later (when the account next generates a query).
    advance(&clock, Duration::from_secs(24 * 3600 + 60));
    let (status, _) = call(
        s.address(),
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(connector_query()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(s.address(), Method::GET, &status_path, creds(&s), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_cost_and_usage_queries_answer_400_naming_the_field() {
    let clock = clock();
    let s = server(&clock).await;
    let mut cases = Vec::new();
    let mut q = connector_query();
    q["date"]["unixTimeMillisecondsEnd"] = json!(1_717_200_000_000_i64 + 61 * 86_400_000);
    cases.push((q, "60 days"));
    let mut q = connector_query();
    q["date"]["unixTimeMillisecondsStart"] = json!(i64::MIN);
    cases.push((q, "date"));
    let mut q = connector_query();
    q["measurements"][0]["type"] = json!("fairShareCost");
    cases.push((q, "measurements[0].type"));
    let mut q = connector_query();
    q["measurements"] = json!([]);
    cases.push((q, "measurements"));
    let mut q = connector_query();
    q["dimensions"][0]["key"] = json!("nope");
    cases.push((q, "dimensions[0]"));
    let mut q = connector_query();
    q["timeInterval"]["interval"] = json!("hour");
    cases.push((q, "timeInterval.interval"));
    let mut q = connector_query();
    q["filters"] = json!({"AND": [{"costCenter": "AWS", "key": "region", "type": "billing_dimension", "operator": "oneOf"}]});
    cases.push((q, "filters.AND[0]"));
    let mut q = connector_query();
    q["rowLimit"] = json!(100_001);
    cases.push((q, "rowLimit"));
    for (query, field) in cases {
        let (status, body) = call(
            s.address(),
            Method::POST,
            "/v2/data/cost-usage/generate-query",
            creds(&s),
            Some(query),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{field}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    // An unknown query id, and a cursor this API never gave.
    let (status, _) = call(
        s.address(),
        Method::GET,
        "/v2/data/cost-usage/nope/status",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        s.address(),
        Method::GET,
        "/v2/data/cost-usage/nope/results?cursor=abc",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn each_route_is_rate_limited_per_account_with_retry_after() {
    let clock = clock();
    let s = server(&clock).await;
    // A second token of the same account.
    let other = s
        .admin()
        .issue_api_token(s.account_id(), None, NewToken::new("ci", Role::ApiToken))
        .await
        .unwrap();
    let other = Some((other.client_id.as_str(), other.secret_key.expose_secret()));
    let generate = "/v2/data/cost-usage/generate-query";
    for i in 0..50 {
        let (status, body) = call(
            s.address(),
            Method::POST,
            generate,
            creds(&s),
            Some(connector_query()),
        )
        .await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, headers, body) = call_full(
        s.address(),
        Method::POST,
        generate,
        creds(&s),
        Some(connector_query()),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests"))
    );
    // One every 1.2 s from now on.
    assert_eq!(headers["retry-after"], "2");
    // The draft's fields: the tighter quota (a minute's, none left), `t` as `Retry-After`.
    assert_eq!(headers["ratelimit"], "\"per-minute\";r=0;t=2");
    assert_eq!(
        headers["ratelimit-policy"],
        "\"per-minute\";q=50;w=60, \"per-day\";q=10000;w=86400"
    );
    // Per account: the other token is refused too...
    let (status, _) = call(
        s.address(),
        Method::POST,
        generate,
        other,
        Some(connector_query()),
    )
    .await;
    assert_eq!(status, 429);
    // ...per route: another route is not.
    let (status, _) = call(
        s.address(),
        Method::GET,
        "/v2/query-language/keys",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // And time gives it back.
    advance(&clock, Duration::from_millis(1_200));
    let (status, _) = call(
        s.address(),
        Method::POST,
        generate,
        other,
        Some(connector_query()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        s.address(),
        Method::POST,
        generate,
        creds(&s),
        Some(connector_query()),
    )
    .await;
    assert_eq!(status, 429);
    advance(&clock, Duration::from_secs(60));
    for _ in 0..50 {
        let (status, _) = call(
            s.address(),
            Method::POST,
            generate,
            creds(&s),
            Some(connector_query()),
        )
        .await;
        assert_eq!(status, 200);
    }

    // A route limited to 100 a minute.
    let tag = json!({"name": "T", "rules": [], "defaultValue": "x"});
    let (_, created) = call(
        s.address(),
        Method::POST,
        "/v2/virtual-tags",
        creds(&s),
        Some(tag),
    )
    .await;
    let path = format!(
        "/v2/virtual-tags/{}",
        created["data"]["id"].as_str().unwrap()
    );
    for _ in 0..100 {
        assert_eq!(
            call(s.address(), Method::GET, &path, creds(&s), None)
                .await
                .0,
            200
        );
    }
    assert_eq!(
        call(s.address(), Method::GET, &path, creds(&s), None)
            .await
            .0,
        429
    );

    // Rate limits off: no 429.
    let s = MockServer::builder()
        .clock(clock.clone())
        .rate_limits(false)
        .start()
        .await;
    for _ in 0..60 {
        let (status, _) = call(
            s.address(),
            Method::POST,
            generate,
            creds(&s),
            Some(connector_query()),
        )
        .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn virtual_tags_v2_create_read_version_stage_and_delete() {
    let clock = clock();
    let s = server(&clock).await;
    let a = s.address();
    let tag = json!({
        "name": "Environment",
        "defaultValue": "Untagged",
        "rules": [{
            "to": {"key": "environment", "costCenter": "AWS", "type": "tag"},
            "filters": {"AND": [{"costCenter": "AWS", "key": "region", "type": "billing_dimension",
                                  "operator": "oneOf", "value": ["us-east-1"]}]},
            "timeframe": {"from": 1_756_166_400_000_i64}
        }],
        "versionMetadata": {"changeDescription": "first"}
    });
    let (status, created) = call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(tag)).await;
    assert_eq!(status, 200, "{created}");
    assert_envelope(&created);
    let data = &created["data"];
    let id = data["id"].as_str().unwrap().to_owned();
    assert_eq!(data["name"], "Environment");
    assert_eq!(data["defaultValue"], "Untagged");
    assert_eq!(data["rules"][0]["timeframe"]["from"], 1_756_166_400_000_i64);
    assert_eq!(data["createdBy"], "admin@finout-mock.local");
    assert!(data.get("accountId").is_none() && data.get("versionMetadata").is_none());
    let created_at = OffsetDateTime::parse(data["createdAt"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(
        created_at,
        datetime!(2026-11-29 12:00 UTC),
        "ISO-8601, on the mock's clock"
    );

    let (_, list) = call(a, Method::GET, "/v2/virtual-tags", creds(&s), None).await;
    assert_eq!(list["data"]["virtualTags"].as_array().unwrap().len(), 1);
    let path = format!("/v2/virtual-tags/{id}");
    let (status, got) = call(a, Method::GET, &path, creds(&s), None).await;
    assert_eq!((status, &got["data"]), (200, data));
    // The same tag through V1, in V1's shape.
    let (status, v1) = call(
        a,
        Method::GET,
        &format!("/v1/virtual-tags/{id}"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!((status, v1["name"].as_str()), (200, Some("Environment")));
    assert!(v1["accountId"].is_string() && v1["createdAt"].as_str().unwrap().contains("GMT"));

    // A staged version changes nothing the tag answers; a live one does.
    advance(&clock, Duration::from_secs(60));
    let staged = json!({"name": "Env (draft)", "defaultValue": {"key": "env", "costCenter": "AWS"},
        "rules": [], "versionMetadata": {"changeDescription": "draft"}});
    let (status, body) = call(
        a,
        Method::PUT,
        &format!("{path}?setAsLive=false"),
        creds(&s),
        Some(staged),
    )
    .await;
    assert_eq!(
        (status, &body["data"]["name"]),
        (200, &json!("Environment"))
    );
    advance(&clock, Duration::from_secs(60));
    let live = json!({"name": "Env", "defaultValue": "none", "rules": []});
    let (status, body) = call(a, Method::PUT, &path, creds(&s), Some(live)).await;
    assert_eq!((status, &body["data"]["name"]), (200, &json!("Env")));
    assert_eq!(body["data"]["createdAt"], data["createdAt"]);
    assert_ne!(body["data"]["updatedAt"], data["updatedAt"]);

    let (status, versions) =
        call(a, Method::GET, &format!("{path}/versions"), creds(&s), None).await;
    assert_eq!(status, 200, "{versions}");
    let list = versions["data"].as_array().unwrap();
    let live_flags: Vec<bool> = list
        .iter()
        .map(|v| v["isLive"].as_bool().unwrap())
        .collect();
    assert_eq!(live_flags, [true, false, false], "newest first");
    assert_eq!(list[1]["changeDescription"], "draft");
    assert_eq!(
        versions["pagination"],
        json!({"nextCursor": null, "hasMore": false})
    );
    let (_, page) = call(
        a,
        Method::GET,
        &format!("{path}/versions?pageSize=1&sortDirection=asc"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(page["data"][0]["changeDescription"], "first");
    assert_eq!(page["pagination"]["hasMore"], true);
    let next = page["pagination"]["nextCursor"].as_str().unwrap();
    let (_, page) = call(
        a,
        Method::GET,
        &format!("{path}/versions?pageSize=1&sortDirection=asc&cursor={next}"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(page["data"][0]["changeDescription"], "draft");
    // `from` (epoch ms) keeps the versions created on or after it.
    let from = (created_at + time::Duration::seconds(30)).unix_timestamp() * 1000;
    let (_, later) = call(
        a,
        Method::GET,
        &format!("{path}/versions?from={from}"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(later["data"].as_array().unwrap().len(), 2);
    let draft_id = list[1]["id"].as_str().unwrap();
    let (status, draft) = call(
        a,
        Method::GET,
        &format!("{path}/versions/{draft_id}"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(
        draft["data"]["versionData"]["defaultValue"],
        json!({"key": "env", "costCenter": "AWS"})
    );
    assert_eq!(draft["data"]["isLive"], false);

    // Metadata: empty, then replaced per value, then merged.
    let meta = format!("{path}/metadata");
    let (status, empty) = call(a, Method::GET, &meta, creds(&s), None).await;
    assert_eq!((status, &empty["data"]), (200, &json!({"metadata": {}})));
    let body = json!({"App Team": {"groups": ["g1"], "customMetadata": {"owner": "Dave"}}});
    let (status, put) = call(a, Method::PUT, &meta, creds(&s), Some(body)).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["data"]["virtualTagId"], id.as_str());
    let body = json!({"App Team": {"groups": ["g2"], "customMetadata": {"tier": "1"},
                                   "mergeValuesAndMetadata": true}});
    call(a, Method::PUT, &meta, creds(&s), Some(body)).await;
    let (_, got) = call(a, Method::GET, &meta, creds(&s), None).await;
    assert_eq!(
        got["data"]["metadata"]["App Team"],
        json!({"groups": ["g1", "g2"], "customMetadata": {"owner": "Dave", "tier": "1"}})
    );
    let (status, _) = call(a, Method::PUT, &meta, creds(&s), Some(json!({"a.b": {}}))).await;
    assert_eq!(status, 400, "values cannot include dots");

    // Bodies Finout's V2 refuses.
    for bad in [
        json!({"name": "x", "rules": [], "defaultValue": null}),
        json!({"name": "x", "defaultValue": "d"}),
        json!({"name": "x", "rules": [{"to": 3}], "defaultValue": "d"}),
        json!({"name": "x", "rules": [{"to": "a", "timeframe": {"to": 1}}], "defaultValue": "d"}),
        json!({"name": "x", "rules": [], "defaultValue": "d", "versionMetadata": "v"}),
    ] {
        let (status, body) = call(
            a,
            Method::POST,
            "/v2/virtual-tags",
            creds(&s),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
    let (status, body) = call(
        a,
        Method::PUT,
        "/v2/virtual-tags/x?setAsLive=maybe",
        creds(&s),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // A Read-only token reads but does not write.
    let reader = s
        .admin()
        .issue_api_token(s.account_id(), None, NewToken::new("r", Role::ReadOnly))
        .await
        .unwrap();
    let reader = Some((reader.client_id.as_str(), reader.secret_key.expose_secret()));
    assert_eq!(call(a, Method::GET, &path, reader, None).await.0, 200);
    assert_eq!(call(a, Method::DELETE, &path, reader, None).await.0, 403);

    let (status, deleted) = call(a, Method::DELETE, &path, creds(&s), None).await;
    assert_eq!(
        (status, &deleted["data"]),
        (200, &json!({"id": id, "name": "Env"}))
    );
    assert_eq!(call(a, Method::GET, &path, creds(&s), None).await.0, 404);
    assert_eq!(
        call(a, Method::GET, &format!("{path}/versions"), creds(&s), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn v2_paths_need_credentials_and_unknown_ones_answer_json_404() {
    let clock = clock();
    let s = server(&clock).await;
    for path in [
        "/v2/virtual-tags",
        "/v2/nope",
        "/v2/data/cost-usage/x/status",
    ] {
        let (status, body) = call(s.address(), Method::GET, path, None, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("missing_credentials")),
            "{path}"
        );
    }
    let (status, body) = call(s.address(), Method::GET, "/v2/nope", creds(&s), None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = call(
        s.address(),
        Method::DELETE,
        "/v2/virtual-tags",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn metrics_count_the_rate_limits_429_with_help_a_histogram_and_gauges() {
    let clock = clock();
    let s = server(&clock).await;
    for _ in 0..51 {
        call(
            s.address(),
            Method::GET,
            "/v2/virtual-tags",
            creds(&s),
            None,
        )
        .await;
    }
    let (status, _, bytes) =
        common::send(s.address(), Method::GET, "/metrics", creds(&s), None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains("finout_auth_requests_total{outcome=\"too_many_requests\"} 1\n"),
        "{text}"
    );
    for line in [
        "# HELP finout_auth_requests_total ",
        "# TYPE finout_auth_requests_total counter",
        "# TYPE finout_mock_request_duration_seconds histogram",
        "finout_mock_request_duration_seconds_bucket{api=\"v2\",status=\"429\",le=\"0.005\"}",
        "finout_mock_request_duration_seconds_count{api=\"v2\",status=\"200\"} 50",
        "# TYPE finout_mock_requests_in_flight gauge",
        // The scrape itself is being answered.
        "finout_mock_requests_in_flight 1",
        "# TYPE finout_auth_verifications_in_flight gauge",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    // The secret appears nowhere.
    assert!(!text.contains(s.secret_key()));
}

#[tokio::test]
async fn queries_are_bounded_and_virtual_tags_are_dimensions() {
    let clock = clock();
    let s = server(&clock).await;
    let a = s.address();
    // A virtual tag whose values are a dimension of the query: 1,000 rules, of which the
    // first two match line items (EC2's and S3's), and a default for the rest.
    let rules: Vec<Value> = (0..1_000)
        .map(|i| {
            let service = ["EC2", "S3"].get(i).copied().unwrap_or("no such service");
            json!({"to": format!("team-{i:04}"), "filters": {"costCenter": "AWS",
                   "key": "service", "operator": "is", "value": [service]}})
        })
        .collect();
    let tag = json!({"name": "Team", "defaultValue": "none", "rules": rules});
    let (status, created) = call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(tag)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["id"].as_str().unwrap().to_owned();

    let every_fixture_dimension: Vec<Value> = [
        "service",
        "region",
        "account",
        "namespace",
        "cluster",
        "vendor",
    ]
    .iter()
    .map(|k| json!({"costCenter": "", "key": k}))
    .collect();
    let query = |dimensions: Vec<Value>, days: i64| {
        json!({
            "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64,
                     "unixTimeMillisecondsEnd": 1_717_200_000_000_i64 + days * 86_400_000},
            "timeInterval": {"interval": "day"},
            "measurements": [{"type": "netAmortizedCost"}],
            "dimensions": dimensions,
            "rowLimit": 100_000
        })
    };
    // Every fixture dimension over 60 days: 432 combinations x 61 days = 26,352 candidate
    // rows, of which 31 combinations x 61 days = 1,891 have line items (the ledger's).
    let (status, body) = call(
        a,
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(query(every_fixture_dimension.clone(), 60)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let big = body["data"]["queryId"].as_str().unwrap().to_owned();
    // The same without `rowLimit`: the default, 1,000 rows.
    let mut limited = query(every_fixture_dimension.clone(), 60);
    limited.as_object_mut().unwrap().remove("rowLimit");
    let (status, body) = call(
        a,
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(limited),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let limited = body["data"]["queryId"].as_str().unwrap().to_owned();
    // With the tag too, 26 million: refused before any work.
    let mut with_tag = every_fixture_dimension.clone();
    with_tag.push(json!({"costCenter": "Virtual Tags", "key": id, "type": "virtual_tag"}));
    let (status, body) = call(
        a,
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(query(with_tag, 60)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("200000"),
        "{body}"
    );
    // The tag alone for one day, by value: its 1,001 values ("none" and 1,000 teams) count
    // towards the caps; the rows are the values its rules assign.
    let tag_only = json!({
        "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64, "unixTimeMillisecondsEnd": 1_717_200_000_000_i64},
        "timeInterval": {"interval": "day"},
        "measurements": [{"type": "netAmortizedCost"}],
        "dimensions": [{"costCenter": "Virtual Tags", "key": id, "sortDirection": "ascending"}]
    });
    let (status, body) = call(
        a,
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(&s),
        Some(tag_only),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let small = body["data"]["queryId"].as_str().unwrap().to_owned();

    advance(&clock, DELAY);
    let (_, status_body) = call(
        a,
        Method::GET,
        &format!("/v2/data/cost-usage/{big}/status"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status_body["data"]["totalRows"], 1_891);
    let (_, status_body) = call(
        a,
        Method::GET,
        &format!("/v2/data/cost-usage/{limited}/status"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status_body["data"]["totalRows"], 1_000);
    let path = format!("/v2/data/cost-usage/{big}/results?pageSize=2&cursor=1889");
    let (status, page) = call(a, Method::GET, &path, creds(&s), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["hasMore"], false);
    // Sorted by the first measurement, descending, across the whole result.
    let first = call(
        a,
        Method::GET,
        &format!("/v2/data/cost-usage/{big}/results?pageSize=1"),
        creds(&s),
        None,
    )
    .await
    .1;
    let top = first["data"][0]["netAmortizedCost_sum"]["amount"]
        .as_f64()
        .unwrap();
    let last = page["data"][1]["netAmortizedCost_sum"]["amount"]
        .as_f64()
        .unwrap();
    assert!(top >= last, "{top} < {last}");

    let path = format!("/v2/data/cost-usage/{small}/results?pageSize=3");
    let (status, page) = call(a, Method::GET, &path, creds(&s), None).await;
    assert_eq!(status, 200, "{page}");
    // One day: EC2's, S3's and the rest.
    assert_eq!(page["pagination"]["totalRows"], 3);
    let values: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["Virtual Tags_virtual_tag_".to_owned() + &id]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(values, ["none", "team-0000", "team-0001"]);
}

#[tokio::test]
async fn a_whole_tag_read_then_put_back_round_trips_through_v1_and_v2() {
    let clock = clock();
    let s = server(&clock).await;
    let a = s.address();
    // Written through V2 with a MegaBill-key default, read and PUT back whole through V1, as
    // clients do.
    let tag = json!({"name": "Env", "defaultValue": {"key": "environment", "costCenter": "AWS"},
        "rules": [{"to": "prod", "filters": {"costCenter": "AWS", "key": "account",
                   "operator": "oneOf", "value": ["production"]}}]});
    let (status, created) = call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(tag)).await;
    assert_eq!(status, 200, "{created}");
    let v1_path = format!(
        "/v1/virtual-tags/{}",
        created["data"]["id"].as_str().unwrap()
    );
    let (status, read) = call(a, Method::GET, &v1_path, creds(&s), None).await;
    assert_eq!(status, 200, "{read}");
    advance(&clock, Duration::from_secs(5));
    let (status, put) = call(a, Method::PUT, &v1_path, creds(&s), Some(read.clone())).await;
    assert_eq!(status, 200, "{put}");
    for field in [
        "id",
        "accountId",
        "name",
        "rules",
        "defaultValue",
        "createdBy",
        "createdAt",
    ] {
        assert_eq!(put[field], read[field], "{field}");
    }
    assert_ne!(put["updatedAt"], read["updatedAt"]);
    assert_ne!(put["requestId"], read["requestId"]);
    // And back through V2, whole.
    let v2_path = v1_path.replace("/v1/", "/v2/");
    let (_, read) = call(a, Method::GET, &v2_path, creds(&s), None).await;
    let (status, put) = call(
        a,
        Method::PUT,
        &v2_path,
        creds(&s),
        Some(read["data"].clone()),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["data"]["rules"], read["data"]["rules"]);
    assert_eq!(put["data"]["defaultValue"], read["data"]["defaultValue"]);
}

#[tokio::test]
async fn a_tag_written_through_v1_reads_and_writes_back_whole_through_v2() {
    let clock = clock();
    let s = server(&clock).await;
    let a = s.address();
    // As V1 allows: no `defaultValue`, and a field of the client's own.
    let tag = json!({"name": "Team", "owner": "finops",
        "rules": [{"to": "a", "filters": {"costCenter": "AWS", "key": "service",
                   "operator": "oneOf", "value": ["EC2"]}}]});
    let (status, created) = call(a, Method::POST, "/v1/virtual-tags", creds(&s), Some(tag)).await;
    assert_eq!(status, 201, "{created}");
    let v2_path = format!("/v2/virtual-tags/{}", created["id"].as_str().unwrap());
    let (status, read) = call(a, Method::GET, &v2_path, creds(&s), None).await;
    assert_eq!(status, 200, "{read}");
    let read = read["data"].clone();
    assert_eq!(read["owner"], "finops");
    assert!(read.get("defaultValue").is_none(), "{read}");
    // PUT back whole through V2: accepted, and the same fields answered.
    advance(&clock, Duration::from_secs(5));
    let (status, put) = call(a, Method::PUT, &v2_path, creds(&s), Some(read.clone())).await;
    assert_eq!(status, 200, "{put}");
    let put = put["data"].clone();
    let fields = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(fields(&put), fields(&read));
    for (field, value) in read.as_object().unwrap() {
        if field != "updatedAt" {
            assert_eq!(&put[field], value, "{field}");
        }
    }
    assert_ne!(put["updatedAt"], read["updatedAt"]);
    // V1 still reads its field.
    let v1_path = v2_path.replace("/v2/", "/v1/");
    let (_, v1) = call(a, Method::GET, &v1_path, creds(&s), None).await;
    assert_eq!(v1["owner"], "finops");

    // What V2 refuses still: a field the tag does not have...
    let refused = |body: &Value, status: u16, word: &str| {
        status == 400
            && body["error"] == "invalid_request"
            && body["requestId"].is_string()
            && body["message"].as_str().is_some_and(|m| m.contains(word))
    };
    let mut more = read.clone();
    more["colour"] = json!("red");
    let (status, body) = call(a, Method::PUT, &v2_path, creds(&s), Some(more)).await;
    assert!(refused(&body, status, "colour"), "{status} {body}");
    // ...a new tag with a field of the client's own, or without `defaultValue`...
    for new in [
        json!({"name": "N", "rules": [], "defaultValue": "d", "owner": "x"}),
        json!({"name": "N", "rules": []}),
    ] {
        let (status, body) = call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(new)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    // ...and dropping the `defaultValue` a tag has.
    let mut with_default = read.clone();
    with_default["defaultValue"] = json!("none");
    let (status, body) = call(a, Method::PUT, &v2_path, creds(&s), Some(with_default)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(a, Method::PUT, &v2_path, creds(&s), Some(read)).await;
    assert!(refused(&body, status, "defaultValue"), "{status} {body}");
}

/// Assert a 429 of a rate limit: Finout's error shape and a `Retry-After` in whole seconds;
/// answer those seconds.
#[track_caller]
fn assert_rate_limited(what: &str, status: u16, headers: &http::HeaderMap, body: &Value) -> u64 {
    assert_eq!(status, 429, "{what}: {body}");
    assert_eq!(body["error"], "too_many_requests", "{what}: {body}");
    assert!(
        body["message"].is_string() && body["requestId"].is_string(),
        "{what}: {body}"
    );
    headers["retry-after"].to_str().unwrap().parse().unwrap()
}

/// A row of the rate-limit table: method, path, requests a minute, body, and another path
/// sharing the limit.
type Route<'a> = (Method, &'a str, u32, Option<&'a Value>, Option<&'a str>);

#[tokio::test]
async fn every_v2_route_has_its_documented_per_minute_limit() {
    let clock = clock();
    let s = server(&clock).await;
    let mut c = Connection::open(s.address()).await;
    let creds = creds(&s);
    // What the paths need, made without using up any V2 route's minute (V1 has no rate
    // limits; the minute is given back below).
    let tag = json!({"name": "T", "rules": [{"to": "a"}], "defaultValue": "d"});
    let (status, _, created) = c
        .call(Method::POST, "/v1/virtual-tags", creds, Some(&tag))
        .await;
    assert_eq!(status, 201, "{created}");
    let tag_id = created["id"].as_str().unwrap().to_owned();
    let (_, _, versions) = c
        .call(
            Method::GET,
            &format!("/v2/virtual-tags/{tag_id}/versions"),
            creds,
            None,
        )
        .await;
    let version_id = versions["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, _, query) = c
        .call(
            Method::POST,
            "/v2/data/cost-usage/generate-query",
            creds,
            Some(&connector_query()),
        )
        .await;
    let query_id = query["data"]["queryId"].as_str().unwrap().to_owned();
    advance(&clock, Duration::from_secs(60));

    // (method, path, requests a minute, body, another path sharing the limit): Finout's
    // table, one route after another on the same account and the same minute, so that any
    // limit shared by two routes (or counted lower or higher) shows.
    let metadata = json!({"a": {"groups": ["g"]}});
    let query_body = connector_query();
    let keys = "/v2/megabill/query-language/keys";
    let values = "/v2/megabill/query-language/values/AWS/service";
    let (q, t, v) = (Some(&query_body), Some(&tag), Some(&metadata));
    #[rustfmt::skip]
    let routes: [Route<'_>; 14] = [
        (Method::POST, "/v2/data/cost-usage/generate-query", 50, q, None),
        (Method::GET, "/v2/data/cost-usage/QUERY/status", 50, None, None),
        (Method::GET, "/v2/data/cost-usage/QUERY/results", 50, None, None),
        (Method::GET, "/v2/query-language/keys", 50, None, Some(keys)),
        (Method::GET, "/v2/query-language/values/AWS/service", 50, None, Some(values)),
        (Method::GET, "/v2/virtual-tags", 50, None, None),
        (Method::POST, "/v2/virtual-tags", 50, t, None),
        (Method::GET, "/v2/virtual-tags/TAG", 100, None, None),
        (Method::GET, "/v2/virtual-tags/TAG/versions", 50, None, None),
        (Method::GET, "/v2/virtual-tags/TAG/versions/VERSION", 100, None, None),
        (Method::GET, "/v2/virtual-tags/TAG/metadata", 100, None, None),
        (Method::PUT, "/v2/virtual-tags/TAG/metadata", 100, v, None),
        // After the versions: 100 new versions drop the first.
        (Method::PUT, "/v2/virtual-tags/TAG", 100, t, None),
        // Last: the first deletes the tag (the next 99 answer 404, and count all the same).
        (Method::DELETE, "/v2/virtual-tags/TAG", 100, None, None),
    ];
    let routes = routes.map(|(method, path, limit, body, shared)| {
        let path = path
            .replace("QUERY", &query_id)
            .replace("TAG", &tag_id)
            .replace("VERSION", &version_id);
        (method, path, limit, body, shared)
    });
    for (method, path, limit, body, shared) in &routes {
        let what = format!("{method} {path}");
        for i in 0..*limit {
            let (status, _, answer) = c.call(method.clone(), path, creds, *body).await;
            if i == 0 {
                assert_eq!(status, 200, "{what}: {answer}");
            } else {
                assert!(
                    status != 429 && status < 500,
                    "{what}, request {i}: {status} {answer}"
                );
            }
        }
        let (status, headers, answer) = c.call(method.clone(), path, creds, *body).await;
        let retry = assert_rate_limited(&what, status, &headers, &answer);
        // The next request is accepted in 60 s / limit (0.6 or 1.2 s): Retry-After rounds up.
        assert!((1..=2).contains(&retry), "{what}: Retry-After {retry}");
        if let Some(shared) = shared {
            let (status, headers, answer) = c.call(method.clone(), shared, creds, None).await;
            assert_rate_limited(shared, status, &headers, &answer);
        }
    }
    // A minute later every route answers again.
    advance(&clock, Duration::from_secs(60));
    for (method, path, _, body, _) in &routes {
        let (status, _, answer) = c.call(method.clone(), path, creds, *body).await;
        assert!(
            status != 429 && status < 500,
            "{method} {path}: {status} {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_query_also_has_a_daily_quota_of_10000() {
    // 50 a minute and 10,000 a day, each a GCRA (finout-auth's RateLimitLayer): 10,000 at
    // once, then one every 8.64 s. Each step moves the clock a minute, which gives the minute
    // back whole (50 more) and the day 60 / 8.64 = 6.94 requests, so the day, counted from
    // the first request, runs out `k` minutes later once 50 (k + 1) > 10,000 + 6.94 k: in
    // the 233rd minute, after 10,000 + floor(232 x 60 / 8.64) = 11,611 requests.
    let clock = clock();
    let s = server(&clock).await;
    let mut c = [
        Connection::open(s.address()).await,
        Connection::open(s.address()).await,
        Connection::open(s.address()).await,
        Connection::open(s.address()).await,
    ];
    let creds = creds(&s);
    // A body the handler refuses (400) after the limits have counted it: cheap, and counted
    // like any other.
    let body = json!({});
    // One minute later, `generate` until refused, four at a time (four connections; the
    // clock stands still meanwhile, so the count is exact): how many were accepted, and the
    // Retry-After of a refusal.
    async fn minute(
        conns: &mut [Connection; 4],
        clock: &ManualClock,
        creds: Option<(&str, &str)>,
        body: &Value,
    ) -> (u32, u64) {
        advance(clock, Duration::from_secs(60));
        let generate = "/v2/data/cost-usage/generate-query";
        let [a, b, c, d] = conns;
        let mut accepted = 0u32;
        loop {
            let answers = tokio::join!(
                a.call(Method::POST, generate, creds, Some(body)),
                b.call(Method::POST, generate, creds, Some(body)),
                c.call(Method::POST, generate, creds, Some(body)),
                d.call(Method::POST, generate, creds, Some(body)),
            );
            let mut retry = None;
            for (status, headers, answer) in [answers.0, answers.1, answers.2, answers.3] {
                if status == 429 {
                    retry = Some(assert_rate_limited(generate, status, &headers, &answer));
                } else {
                    assert_eq!(status, 400, "{answer}");
                    accepted += 1;
                }
            }
            assert!(accepted <= 50, "more than 50 in a minute");
            if let Some(retry) = retry {
                return (accepted, retry);
            }
        }
    }
    let mut total = 0u32;
    let mut steps = 0u32;
    let (last, retry) = loop {
        let (accepted, retry) = minute(&mut c, &clock, creds, &body).await;
        steps += 1;
        if accepted < 50 {
            break (accepted, retry);
        }
        total += accepted;
        assert!(steps < 300, "no daily quota after {total} requests");
    };
    total += last;
    // Not a request before the 10,000 is refused, nor one after the day's share is used.
    assert_eq!((steps, total), (233, 11_611));
    // Refused by the day: the next is 8.64 s away at most (not the minute's 1.2 s).
    assert!((2..=9).contains(&retry), "Retry-After {retry}");
    // From now on, a minute gives 6 or 7 requests: 10,000 a day sustained.
    for _ in 0..5 {
        let (accepted, _) = minute(&mut c, &clock, creds, &body).await;
        assert!((6..=7).contains(&accepted), "{accepted} in a minute");
    }
    // A day later the day is back whole: the minute's 50 again, then some.
    advance(&clock, Duration::from_secs(86_400));
    for _ in 0..3 {
        assert_eq!(minute(&mut c, &clock, creds, &body).await.0, 50);
    }
}

/// A query names at most 3 distinct virtual tags across its dimensions and filters (the
/// community description of V2); the same tag named twice counts once.
#[tokio::test]
async fn a_query_names_at_most_three_virtual_tags() {
    let clock = clock();
    let s = server(&clock).await;
    let a = s.address();
    let mut ids = Vec::new();
    for name in ["A", "B", "C", "D"] {
        let tag = json!({"name": name, "defaultValue": "x", "rules": []});
        let (status, created) =
            call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(tag)).await;
        assert_eq!(status, 200, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    let tag_dim = |id: &str| json!({"costCenter": "Virtual Tags", "key": id});
    let tag_is = |id: &str| {
        json!({"costCenter": "virtual tags", "key": id, "type": "virtual_tag",
               "operator": "oneOf", "value": ["x"]})
    };
    let server = &s;
    let generate = |dimensions: Value, filters: Value| {
        let mut body = connector_query();
        body["dimensions"] = dimensions;
        body["filters"] = filters;
        async move {
            call(
                a,
                Method::POST,
                "/v2/data/cost-usage/generate-query",
                creds(server),
                Some(body),
            )
            .await
        }
    };
    let three = generate(
        json!([tag_dim(&ids[0]), tag_dim(&ids[1])]),
        json!({"AND": [tag_is(&ids[2]), {"OR": [tag_is(&ids[0])]}]}),
    )
    .await;
    assert_eq!(three.0, 200, "{}", three.1);
    let four = generate(
        json!([tag_dim(&ids[0]), tag_dim(&ids[1])]),
        json!({"AND": [tag_is(&ids[2]), {"OR": [tag_is(&ids[3])]}]}),
    )
    .await;
    assert_eq!(four.0, 400, "{}", four.1);
    assert_eq!(
        four.1["message"],
        "dimensions: at most 3 virtual tags across dimensions and filters, 4 named"
    );
}
