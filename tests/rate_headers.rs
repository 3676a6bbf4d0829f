//! Rate-limit header fields (`RateLimitLayer::headers`): their values follow the GCRA state
//! the decision left, the same in the process's own counts, in `MemoryShared` and in Redis
//! (when `FINOUT_AUTH_TEST_REDIS_URL` is set): `remaining` falls by one per admitted request,
//! `reset` is when the next request will be admitted once nothing remains (and the 429's
//! `Retry-After`); present on admitted answers and on the 429, absent when not asked for.

use std::{convert::Infallible, time::Duration};

const HOUR: Duration = Duration::from_secs(3_600);

use finout_auth::{
    AccountId, ClientId, Principal, Role,
    clock::ManualClock,
    middleware::{Quota, RateLimitHeaders, RateLimitLayer},
    shared::{MemoryShared, Shared},
};
use http::{HeaderMap, Request, Response, StatusCode};
use time::macros::datetime;
use tower::{Layer, ServiceExt, service_fn};

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-29 12:00 UTC))
}

/// The status and header fields of one request of account `a1` through `layer`.
async fn answer(layer: &RateLimitLayer) -> (StatusCode, HeaderMap) {
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut request = Request::new(());
    request.extensions_mut().insert(Principal::account(
        AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a1")),
        Role::ReadOnly,
        ClientId::from("a"),
    ));
    let response = service.oneshot(request).await.unwrap();
    (response.status(), response.headers().clone())
}

fn field<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// 3 a minute: one request every 20 s after a burst of 3, as the GCRA has it.
async fn three_a_minute(layer: RateLimitLayer, clock: &ManualClock) {
    for remaining in [2, 1, 0] {
        let (status, headers) = answer(&layer).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            field(&headers, "ratelimit-policy"),
            Some("\"per-minute\";q=3;w=60")
        );
        // Each admitted request frees up again 20 s after the previous one.
        let expected = format!("\"per-minute\";r={remaining};t=20");
        assert_eq!(field(&headers, "ratelimit"), Some(expected.as_str()));
        assert_eq!(field(&headers, "retry-after"), None);
    }
    // Refused: nothing used up; `t` is `Retry-After`.
    let (status, headers) = answer(&layer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&headers, "retry-after"), Some("20"));
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-minute\";r=0;t=20")
    );
    assert!(headers.contains_key("ratelimit-policy"));
    clock.advance(time::Duration::seconds(5));
    let (status, headers) = answer(&layer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&headers, "retry-after"), Some("15"));
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-minute\";r=0;t=15")
    );
    // One second short of `t`: still refused; at `t`: admitted.
    clock.advance(time::Duration::seconds(14));
    assert_eq!(answer(&layer).await.0, StatusCode::TOO_MANY_REQUESTS);
    clock.advance(time::Duration::seconds(1));
    let (status, headers) = answer(&layer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-minute\";r=0;t=20")
    );
    // Idle for a period: the burst is back.
    clock.advance(time::Duration::seconds(60));
    assert_eq!(
        field(&answer(&layer).await.1, "ratelimit"),
        Some("\"per-minute\";r=2;t=20")
    );
}

fn draft(quotas: impl IntoIterator<Item = Quota>, clock: &ManualClock) -> RateLimitLayer {
    RateLimitLayer::new(quotas)
        .clock(clock.clone())
        .headers(RateLimitHeaders::Draft)
}

#[tokio::test]
async fn draft_fields_follow_the_processs_own_counts() {
    let clock = clock();
    three_a_minute(draft([Quota::per_minute(3)], &clock), &clock).await;
}

#[tokio::test]
async fn draft_fields_follow_the_shared_counts_and_their_fall_back() {
    let clock = clock();
    let memory = MemoryShared::new();
    let layer = draft([Quota::per_minute(3)], &clock).shared(Shared::new(memory.clone()), "r");
    three_a_minute(layer.clone(), &clock).await;
    // Shared state down: the process's own counts (fresh here) answer, with the fields.
    memory.set_down(true);
    let (status, headers) = answer(&layer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-minute\";r=2;t=20")
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn draft_fields_follow_the_counts_in_redis() {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_REDIS_URL") else {
        eprintln!("skipped: FINOUT_AUTH_TEST_REDIS_URL is not set (no Redis to test against)");
        return;
    };
    let prefix = format!("finout-auth-test:{}:", uuid::Uuid::new_v4());
    let redis = finout_auth::shared::RedisShared::new(&url).expect("a Redis URL");
    let shared = Shared::new(redis.prefix(prefix));
    let clock = clock();
    let layer = draft([Quota::per_minute(3)], &clock).shared(shared.clone(), "r");
    three_a_minute(layer, &clock).await;
    // Another replica (its own counts empty) reads Redis' state: one used, so 1 left.
    let replica = draft([Quota::per_minute(3)], &clock).shared(shared.clone(), "r");
    assert_eq!(
        field(&answer(&replica).await.1, "ratelimit"),
        Some("\"per-minute\";r=1;t=20")
    );
    // Two quotas: the tie-break as in the process (see below).
    let layer = draft([Quota::per_minute(2), Quota::new(2, HOUR)], &clock).shared(shared, "t");
    both_empty(layer).await;
}

#[tokio::test]
async fn of_several_quotas_the_least_remaining_is_reported() {
    let clock = clock();
    let layer = draft([Quota::per_minute(10), Quota::new(3, HOUR)], &clock);
    let (_, headers) = answer(&layer).await;
    assert_eq!(
        field(&headers, "ratelimit-policy"),
        Some("\"per-minute\";q=10;w=60, \"per-hour\";q=3;w=3600")
    );
    // 9 left a minute, 2 an hour (one every 1,200 s).
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-hour\";r=2;t=1200")
    );
}

/// 2 a minute and 2 an hour, both used up: the hour's is reported (it frees up last).
async fn both_empty(layer: RateLimitLayer) {
    answer(&layer).await;
    let (_, headers) = answer(&layer).await;
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-hour\";r=0;t=1800")
    );
    let (status, headers) = answer(&layer).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(field(&headers, "retry-after"), Some("1800"));
    assert_eq!(
        field(&headers, "ratelimit"),
        Some("\"per-hour\";r=0;t=1800")
    );
}

#[tokio::test]
async fn with_nothing_remaining_anywhere_the_last_to_free_up_is_reported() {
    let clock = clock();
    both_empty(draft([Quota::per_minute(2), Quota::new(2, HOUR)], &clock)).await;
    let memory = Shared::new(MemoryShared::new());
    both_empty(draft([Quota::per_minute(2), Quota::new(2, HOUR)], &clock).shared(memory, "t"))
        .await;
}

#[tokio::test]
async fn the_x_ratelimit_trio() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(3)])
        .clock(clock.clone())
        .headers(RateLimitHeaders::XRateLimit);
    for remaining in ["2", "1", "0", "0"] {
        let (_, headers) = answer(&layer).await;
        assert_eq!(field(&headers, "x-ratelimit-limit"), Some("3"));
        assert_eq!(field(&headers, "x-ratelimit-remaining"), Some(remaining));
        assert_eq!(field(&headers, "x-ratelimit-reset"), Some("20"));
        assert!(!headers.contains_key("ratelimit"));
    }
}

#[tokio::test]
async fn no_fields_unless_asked_for() {
    let clock = clock();
    for layer in [
        RateLimitLayer::new([Quota::per_minute(1)]).clock(clock.clone()),
        RateLimitLayer::new([Quota::per_minute(1)])
            .clock(clock.clone())
            .headers(RateLimitHeaders::Off),
    ] {
        for status in [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
            let (answered, headers) = answer(&layer).await;
            assert_eq!(answered, status);
            for name in ["ratelimit", "ratelimit-policy", "x-ratelimit-remaining"] {
                assert!(!headers.contains_key(name), "{name} on a {status}");
            }
        }
    }
}
