//! One cost ledger behind every cost answer, on a manual clock: for several date ranges and
//! cost types, V1 `query-by-view` ungrouped and grouped by every dimension and by virtual
//! tags, and V2 cost-and-usage with no dimension, cost-center keys, virtual tags, filters and
//! every interval, all sum to the same total; a view's own definition and V2 filters are
//! applied; virtual-tag rules move cost between values; no day after "today" has cost.

mod common;

use std::time::Duration;

use common::call;
use finout_auth::clock::ManualClock;
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};
use time::macros::datetime;

const DAY: i64 = 86_400_000;
/// 2024-07-15T00:00:00Z: the start of the mock's today.
const TODAY: i64 = 1_721_001_600_000;

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

/// An amount as answered, in the ledger's ten-thousandths (exact for the mock's amounts).
fn units(amount: &Value) -> i64 {
    (amount.as_f64().unwrap() * 10_000.0).round() as i64
}

/// A V1 answer: the sum of its `Total` series, the sum of every other series, and the
/// latest day with a point.
struct V1 {
    total: i64,
    series_sum: i64,
    names: Vec<String>,
    /// Per day (ms), the `Total` cost.
    daily: Vec<(i64, i64)>,
    latest: Option<i64>,
}

async fn v1(s: &MockServer, view: &str, range: (i64, i64), cost: &str, group: Option<&str>) -> V1 {
    let mut body = json!({"viewId": view, "costType": cost,
        "date": {"unixTimeMillSecondsStart": range.0, "unixTimeMillSecondsEnd": range.1}});
    if let Some(g) = group {
        body["groupBy"] = json!([g]);
    }
    let (status, answer) = call(
        s.address(),
        Method::POST,
        "/v1/cost/query-by-view",
        creds(s),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let series = answer["data"].as_array().unwrap();
    let (total, others) = series.split_last().unwrap();
    assert_eq!(total["name"], "Total");
    let sum = |s: &Value| {
        s["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| units(&p["cost"]))
            .sum::<i64>()
    };
    let daily: Vec<(i64, i64)> = total["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["time"].as_i64().unwrap(), units(&p["cost"])))
        .collect();
    // Each day's total is the sum of the series that day.
    for (i, (_, day_total)) in daily.iter().enumerate() {
        let of_series: i64 = others.iter().map(|s| units(&s["data"][i]["cost"])).sum();
        assert_eq!(of_series, *day_total, "day {i} of {group:?}");
    }
    V1 {
        total: sum(total),
        series_sum: others.iter().map(sum).sum(),
        names: others
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect(),
        latest: daily.iter().map(|(t, _)| *t).max(),
        daily,
    }
}

/// Every row of a V2 cost-and-usage query.
async fn v2(
    s: &MockServer,
    range: (i64, i64),
    interval: &str,
    measurement: &str,
    dimensions: Value,
    filters: Option<Value>,
) -> Vec<Value> {
    let mut body = json!({
        "date": {"unixTimeMillisecondsStart": range.0, "unixTimeMillisecondsEnd": range.1},
        "timeInterval": {"interval": interval},
        "measurements": [{"type": measurement, "operator": "sum"}],
        "dimensions": dimensions,
        "rowLimit": 100_000
    });
    if let Some(f) = filters {
        body["filters"] = f;
    }
    let (status, generated) = call(
        s.address(),
        Method::POST,
        "/v2/data/cost-usage/generate-query",
        creds(s),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    let id = generated["data"]["queryId"].as_str().unwrap().to_owned();
    let (status, done) = call(
        s.address(),
        Method::GET,
        &format!("/v2/data/cost-usage/{id}/status"),
        creds(s),
        None,
    )
    .await;
    assert_eq!(
        (status, &done["data"]["status"]),
        (200, &json!("completed"))
    );
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v2/data/cost-usage/{id}/results?pageSize=10000");
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let (status, page) = call(s.address(), Method::GET, &path, creds(s), None).await;
        assert_eq!(status, 200, "{page}");
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["pagination"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        done["data"]["totalRows"],
        rows.len(),
        "status and results agree"
    );
    rows
}

fn v2_sum(rows: &[Value], measurement: &str) -> i64 {
    rows.iter()
        .map(|r| units(&r[format!("{measurement}_sum")]["amount"]))
        .sum()
}

fn dim(cost_center: &str, key: &str) -> Value {
    json!({"costCenter": cost_center, "key": key})
}

fn condition(cost_center: &str, key: &str, operator: &str, value: &[&str]) -> Value {
    json!({"costCenter": cost_center, "key": key, "type": "billing_dimension",
           "operator": operator, "value": value})
}

/// A mock whose today is 2024-07-15 (its clock, at noon), whose V2 queries complete at once,
/// without rate limits.
async fn server() -> (ManualClock, MockServer) {
    let clock = ManualClock::new(datetime!(2024-07-15 12:00 UTC));
    let s = MockServer::builder()
        .clock(clock.clone())
        .query_delay(Duration::ZERO)
        .rate_limits(false)
        .start()
        .await;
    (clock, s)
}

async fn create_tag(s: &MockServer, path: &str, tag: Value) -> String {
    let (status, created) = call(s.address(), Method::POST, path, creds(s), Some(tag)).await;
    assert!(status == 200 || status == 201, "{status} {created}");
    created["data"]["id"]
        .as_str()
        .or(created["id"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_grouping_api_version_and_filter_sums_to_one_ledger() {
    let (clock, s) = server().await;
    // Two virtual tags: "Team" moves EC2 and EKS to "compute", Kubernetes costs to their
    // namespace, S3 to "late-storage" from three days before today; the rest is "shared".
    // "Env" (written through V1, no default) tags production, and leaves the rest untagged.
    let team = create_tag(
        &s,
        "/v2/virtual-tags",
        json!({"name": "Team", "defaultValue": "shared", "rules": [
            {"to": "compute", "filters": condition("AWS", "service", "oneOf", &["EC2", "EKS"])},
            {"to": {"costCenter": "Kubernetes", "key": "namespace"},
             "filters": condition("Global", "vendor", "is", &["Kubernetes"])},
            {"to": "late-storage", "filters": condition("AWS", "service", "is", &["S3"]),
             "timeframe": {"from": TODAY - 3 * DAY}}
        ]}),
    )
    .await;
    let env = create_tag(
        &s,
        "/v1/virtual-tags",
        json!({"name": "Env", "rules": [
            {"to": "prod", "filters": condition("AWS", "account", "oneOf", &["production"])}
        ]}),
    )
    .await;
    let (status, views) = call(s.address(), Method::GET, "/v1/view", creds(&s), None).await;
    assert_eq!(status, 200);
    let view = |i: usize| views["data"][i]["id"].as_str().unwrap().to_owned();
    let (all, aws, kubernetes) = (view(0), view(1), view(2));
    assert_eq!(views["data"][0]["name"], "All cloud costs");

    let ranges = [
        // Past days only, mid-day instants at both ends.
        (TODAY - 40 * DAY + 3_600_000, TODAY - 20 * DAY + 7_200_000),
        // Across today: ten days of costs, ten without.
        (TODAY - 9 * DAY, TODAY + 10 * DAY + 5 * 3_600_000),
        // Today alone.
        (TODAY, TODAY + 3_600_000),
        // Sixty days up to the end of today.
        (TODAY - 59 * DAY, TODAY + DAY - 1),
        // The future only.
        (TODAY + DAY, TODAY + 20 * DAY),
    ];
    let groupings = [
        "service",
        "region",
        "account",
        "namespace",
        "cluster",
        "vendor",
        "Service",
        team.as_str(),
        "Env",
    ];
    let v2_dimensions = [
        json!([]),
        json!([dim("AWS", "service")]),
        json!([dim("", "region")]),
        json!([dim("Kubernetes", "namespace"), dim("Kubernetes", "cluster")]),
        json!([
            dim("Global", "vendor"),
            dim("AWS", "account"),
            dim("AWS", "service")
        ]),
        json!([dim("Virtual Tags", &team)]),
        json!([
            dim("Virtual Tags", &team),
            dim("Virtual Tags", &env),
            dim("", "vendor")
        ]),
    ];
    for (r, &range) in ranges.iter().enumerate() {
        let future = range.0 > TODAY;
        for cost in ["netAmortizedCost", "listCost"] {
            let ungrouped = v1(&s, &all, range, cost, None).await;
            let total = ungrouped.total;
            assert_eq!(ungrouped.series_sum, total, "range {r} {cost}");
            assert_eq!(future, total == 0, "range {r} {cost}: {total}");
            // No day after today has a point, let alone a cost.
            assert!(ungrouped.latest.is_none_or(|t| t <= TODAY), "range {r}");

            // V1: every groupBy, dimensions and virtual tags (by id and by name).
            for group in groupings {
                let grouped = v1(&s, &all, range, cost, Some(group)).await;
                assert_eq!(
                    (grouped.total, grouped.series_sum),
                    (total, total),
                    "range {r} {cost} by {group}"
                );
                assert_eq!(
                    grouped.daily, ungrouped.daily,
                    "range {r} {cost} by {group}"
                );
            }

            // V2: no dimension, cost-center keys, virtual tags, every interval.
            for dimensions in &v2_dimensions {
                for interval in ["day", "week", "month"] {
                    let rows = v2(&s, range, interval, cost, dimensions.clone(), None).await;
                    assert_eq!(
                        v2_sum(&rows, cost),
                        total,
                        "range {r} {cost} {interval} {dimensions}"
                    );
                    if interval == "day" {
                        assert!(
                            rows.iter()
                                .all(|row| row["day"].as_str().unwrap() <= "2024-07-15"),
                            "no day after today: range {r}"
                        );
                    }
                }
            }
            // V2 by day, no dimension: each day is V1's day.
            let by_day = v2(&s, range, "day", cost, json!([]), None).await;
            assert_eq!(by_day.len(), ungrouped.daily.len(), "range {r}");

            // A view's own definition is a filter: "AWS by service" is V2 filtered to AWS,
            // and with the other vendors it makes the whole.
            let aws_view = v1(&s, &aws, range, cost, None).await;
            let aws_only = condition("Global", "vendor", "oneOf", &["AWS"]);
            let not_aws = condition("Global", "vendor", "notOneOf", &["AWS"]);
            let rows = v2(
                &s,
                range,
                "day",
                cost,
                json!([dim("AWS", "service")]),
                Some(aws_only.clone()),
            )
            .await;
            assert_eq!(v2_sum(&rows, cost), aws_view.total, "range {r} {cost}");
            let rest = v2(
                &s,
                range,
                "week",
                cost,
                json!([]),
                Some(json!({"AND": [not_aws]})),
            )
            .await;
            assert_eq!(
                aws_view.total + v2_sum(&rest, cost),
                total,
                "range {r} {cost}"
            );
            let k8s_view = v1(&s, &kubernetes, range, cost, Some("vendor")).await;
            assert!(
                k8s_view.names.iter().all(|n| n == "Kubernetes"),
                "{:?}",
                k8s_view.names
            );
            if !future {
                assert!(aws_view.total > 0 && aws_view.total < total, "range {r}");
                assert_eq!(aws_view.names, ["EC2", "S3", "RDS", "EKS"]);
            }

            // A filter on a virtual tag, and its complement, make the whole too; so does an
            // OR of conditions that cover everything.
            let compute = json!({"costCenter": "Virtual Tags", "key": team, "type": "virtual_tag",
                                 "operator": "is", "value": ["compute"]});
            let mut not_compute = compute.clone();
            not_compute["operator"] = json!("notIs");
            let a = v2(
                &s,
                range,
                "day",
                cost,
                json!([dim("", "region")]),
                Some(compute),
            )
            .await;
            let b = v2(&s, range, "month", cost, json!([]), Some(not_compute)).await;
            assert_eq!(
                v2_sum(&a, cost) + v2_sum(&b, cost),
                total,
                "range {r} {cost}"
            );
            let either = json!({"OR": [aws_only, condition("", "region", "notExists", &[])]});
            let rows = v2(
                &s,
                range,
                "day",
                cost,
                json!([dim("Virtual Tags", &env)]),
                Some(either),
            )
            .await;
            assert_eq!(v2_sum(&rows, cost), total, "range {r} {cost}");

            // The tag's rules move cost: "compute" is AWS's EC2 and EKS, "late-storage" S3
            // from three days before today, the namespaces Kubernetes's.
            let by_team = v1(&s, &all, range, cost, Some(&team)).await;
            let by_service = v1(&s, &aws, range, cost, Some("service")).await;
            let by_namespace = v1(&s, &kubernetes, range, cost, None).await;
            let team_rows = v2(
                &s,
                range,
                "day",
                cost,
                json!([dim("Virtual Tags", &team)]),
                None,
            )
            .await;
            let value_sum = |name: &str| {
                team_rows
                    .iter()
                    .filter(|row| row[format!("Virtual Tags_virtual_tag_{team}")] == name)
                    .map(|row| units(&row[format!("{cost}_sum")]["amount"]))
                    .sum::<i64>()
            };
            let ec2 = service_total(&s, &aws, range, cost, "EC2").await;
            let eks = service_total(&s, &aws, range, cost, "EKS").await;
            assert_eq!(value_sum("compute"), ec2 + eks, "range {r}");
            assert_eq!(
                value_sum("payments") + value_sum("search") + value_sum("platform"),
                by_namespace.total,
                "range {r}"
            );
            let late: i64 = team_rows
                .iter()
                .filter(|row| row[format!("Virtual Tags_virtual_tag_{team}")] == "late-storage")
                .map(|row| {
                    assert!(row["day"].as_str().unwrap() >= "2024-07-12", "{row}");
                    units(&row[format!("{cost}_sum")]["amount"])
                })
                .sum();
            assert_eq!(by_team.total, total);
            assert!(by_service.total > 0 || future);
            if range.0 == TODAY - 59 * DAY {
                assert!(late > 0, "S3's last days are late-storage");
                assert!(by_team.names.contains(&"late-storage".to_owned()));
                assert!(
                    by_team.names.contains(&"shared".to_owned()),
                    "S3 before, GCP"
                );
            }
        }
    }

    // Untagged: "Env" has no default.
    let by_env = v1(&s, &all, ranges[3], "netAmortizedCost", Some(&env)).await;
    assert_eq!(by_env.names, ["Untagged", "prod"]);

    // The same days answer the same costs tomorrow; the new day has costs.
    let past = v1(&s, &all, ranges[0], "netAmortizedCost", None).await;
    let across = v1(&s, &all, ranges[1], "netAmortizedCost", None).await;
    clock.advance(time::Duration::days(1));
    assert_eq!(
        v1(&s, &all, ranges[0], "netAmortizedCost", None)
            .await
            .total,
        past.total
    );
    let later = v1(&s, &all, ranges[1], "netAmortizedCost", None).await;
    assert_eq!(later.daily.len(), across.daily.len() + 1);
    assert_eq!(later.daily[..across.daily.len()], across.daily[..]);
    assert!(later.daily.last().unwrap().1 > 0);
}

/// One service's total in a view grouped by service.
async fn service_total(
    s: &MockServer,
    view: &str,
    range: (i64, i64),
    cost: &str,
    service: &str,
) -> i64 {
    let mut body = json!({"viewId": view, "costType": cost, "groupBy": ["service"],
        "date": {"unixTimeMillSecondsStart": range.0, "unixTimeMillSecondsEnd": range.1}});
    body["groupBy"] = json!(["service"]);
    let (_, answer) = call(
        s.address(),
        Method::POST,
        "/v1/cost/query-by-view",
        creds(s),
        Some(body),
    )
    .await;
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|series| series["name"] == service)
        .flat_map(|series| series["data"].as_array().unwrap().iter())
        .map(|p| units(&p["cost"]))
        .sum()
}

/// A virtual tag's values (`/v2/query-language/values/Virtual Tags/{id}`) are exactly what
/// grouping by it answers: strings, the values of a MegaBill key it assigns, and those of
/// another virtual tag it assigns.
#[tokio::test]
async fn a_virtual_tags_values_are_what_grouping_by_it_answers() {
    let (_clock, s) = server().await;
    let team = create_tag(
        &s,
        "/v2/virtual-tags",
        json!({"name": "Team", "defaultValue": "search", "rules": [
            {"to": "payments", "filters": condition("Kubernetes", "cluster", "oneOf", &["prod-eu"])}
        ]}),
    )
    .await;
    let owner = create_tag(
        &s,
        "/v2/virtual-tags",
        json!({"name": "Owner", "defaultValue": "other", "rules": [
            {"to": {"costCenter": "AWS", "key": "region"},
             "filters": condition("Global", "vendor", "is", &["AWS"])},
            {"to": {"costCenter": "Virtual Tags", "key": team},
             "filters": condition("Global", "vendor", "is", &["Kubernetes"])}
        ]}),
    )
    .await;
    let values = |key: String| {
        let s = &s;
        async move {
            let path = format!("/v2/query-language/values/{key}");
            let (status, answer) = call(s.address(), Method::GET, &path, creds(s), None).await;
            assert_eq!(status, 200, "{answer}");
            let mut values: Vec<String> = answer["data"]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            values.sort();
            values
        }
    };
    let regions = values("AWS/region".into()).await;
    assert!(regions.len() > 1, "{regions:?}");
    let (status, views) = call(s.address(), Method::GET, "/v1/view", creds(&s), None).await;
    assert_eq!(status, 200);
    let all = views["data"][0]["id"].as_str().unwrap().to_owned();
    for (tag, expected) in [
        (&team, vec!["payments", "search"]),
        (
            &owner,
            regions
                .iter()
                .map(String::as_str)
                .chain(["other", "payments", "search"])
                .collect(),
        ),
    ] {
        let listed = values(format!("Virtual%20Tags/{tag}")).await;
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        expected.sort();
        assert_eq!(listed, expected, "tag {tag}");
        let mut grouped = v1(
            &s,
            &all,
            (TODAY - 9 * DAY, TODAY),
            "netAmortizedCost",
            Some(tag),
        )
        .await
        .names;
        grouped.sort();
        assert_eq!(grouped, listed, "grouping by {tag} answers its values");
    }
}

/// CostGuard's scans are made of the ledger's line items: the EC2 rightsizing scan's total
/// cost is the V2 net amortized cost of AWS EC2 over its three analysis days, filters keep
/// what a V2 filter keeps, and groups add up to the totals.
#[tokio::test]
async fn costguard_scans_add_up_to_the_ledger() {
    let (_clock, s) = server().await;
    let (status, scans) = call(
        s.address(),
        Method::GET,
        "/v1/cost-guard/scans",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200, "{scans}");
    let scans = scans["scans"].as_array().unwrap().clone();
    assert!(
        scans.iter().all(|scan| scan["scanLastRunTime"] == TODAY),
        "{scans:?}"
    );
    let ec2 = scans
        .iter()
        .find(|scan| scan["scanName"] == "EC2 - Rightsizing")
        .unwrap()["scanId"]
        .clone();
    let gcp = scans
        .iter()
        .find(|scan| scan["scanName"] == "VM - Rightsizing")
        .unwrap()["scanId"]
        .clone();
    let recommend = |body: Value| {
        let s = &s;
        async move {
            let (status, answer) = call(
                s.address(),
                Method::POST,
                "/v1/cost-guard/scans-recommendations",
                creds(s),
                Some(body),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            answer
        }
    };
    let analysis = (TODAY - 3 * DAY, TODAY - 1);
    let ec2_only = condition("AWS", "service", "is", &["EC2"]);
    let in_region = |region: &str| condition("AWS", "region", "is", &[region]);
    let cents = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as i64;
    for (filter, v2_filter) in [
        (None, ec2_only.clone()),
        (
            Some(
                json!({"costCenter": "AWS", "key": "region", "operator": "is", "value": "eu-west-1"}),
            ),
            json!({"AND": [ec2_only.clone(), in_region("eu-west-1")]}),
        ),
    ] {
        let mut body = json!({"scanId": ec2, "groupBy": {"costCenter": "AWS", "key": "region"}});
        if let Some(f) = &filter {
            body["filters"] = f.clone();
        }
        let answer = recommend(body).await;
        let rows = v2(
            &s,
            analysis,
            "day",
            "netAmortizedCost",
            json!([]),
            Some(v2_filter),
        )
        .await;
        let v2_cents = v2_sum(&rows, "netAmortizedCost") / 100;
        assert!(v2_cents > 0);
        assert_eq!(cents(&answer["scanTotalCost"]), v2_cents, "{filter:?}");
        let groups = answer["data"].as_array().unwrap();
        assert_eq!(
            groups.len(),
            if filter.is_some() { 1 } else { 3 },
            "{answer}"
        );
        let (mut waste, mut savings) = (0, 0);
        for group in groups {
            let resources = group["resources"].as_array().unwrap();
            let group_savings: i64 = resources
                .iter()
                .map(|r| cents(&r["resourceYearlyPotentialSavings"]))
                .sum();
            assert_eq!(cents(&group["groupYearlyPotentialSavings"]), group_savings);
            for r in resources {
                assert_eq!(r["resourceMetadata"]["region"], group["group"]);
                assert_eq!(r["resourceMetadata"]["service"], "EC2");
                waste += cents(&r["resourceTotalWaste"]);
            }
            savings += group_savings;
        }
        assert_eq!(cents(&answer["scanTotalWaste"]), waste);
        assert_eq!(cents(&answer["scanYearlyPotentialSavings"]), savings);
        assert!(waste > 0 && waste < cents(&answer["scanTotalCost"]));
    }
    // GCP's costs have no region: a region filter keeps none of a GCP scan's resources.
    let none = recommend(json!({"scanId": gcp, "filters": in_region("eu-west-1")})).await;
    assert_eq!(none["data"], json!([]));
    assert_eq!(cents(&none["scanTotalCost"]), 0);
    let all = recommend(json!({"scanId": gcp})).await;
    assert!(cents(&all["scanTotalCost"]) > 0);
    assert_eq!(all["data"][0]["group"], "All");
}
