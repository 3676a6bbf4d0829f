use std::convert::Infallible;

use http::{StatusCode, header};
use time::macros::datetime;
use tower::{ServiceExt, service_fn};

use super::*;
use crate::{clock::ManualClock, model::Role};

const ACCOUNT: AccountId = AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a1"));
const OTHER_ACCOUNT: AccountId = AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a2"));

fn principal(account: AccountId, client_id: &str) -> Principal {
    Principal::account(account, Role::ReadOnly, ClientId::from(client_id))
}

/// The status and `Retry-After` (seconds) of one request through `layer`.
async fn call(layer: &RateLimitLayer, principal: Option<Principal>) -> (StatusCode, Option<u64>) {
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut request = Request::new(());
    if let Some(p) = principal {
        request.extensions_mut().insert(p);
    }
    let response = service.oneshot(request).await.unwrap();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status(), retry)
}

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-29 12:00 UTC))
}

#[tokio::test]
async fn a_burst_of_the_limit_passes_then_one_per_interval() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(3)]).clock(clock.clone());
    let p = principal(ACCOUNT, "a");
    for _ in 0..3 {
        assert_eq!(call(&layer, Some(p.clone())).await, (StatusCode::OK, None));
    }
    // One request every 20 s from now on: the next is 20 s away.
    assert_eq!(
        call(&layer, Some(p.clone())).await,
        (StatusCode::TOO_MANY_REQUESTS, Some(20))
    );
    clock.advance(time::Duration::seconds(19));
    assert_eq!(
        call(&layer, Some(p.clone())).await,
        (StatusCode::TOO_MANY_REQUESTS, Some(1))
    );
    clock.advance(time::Duration::seconds(1));
    assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    assert_eq!(
        call(&layer, Some(p.clone())).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn refused_requests_use_nothing_up_and_a_steady_caller_is_never_refused() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(60)]).clock(clock.clone());
    let p = principal(ACCOUNT, "a");
    // Exhaust, then hammer 1,000 times within the same instant: all refused...
    for _ in 0..60 {
        assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    }
    for _ in 0..1_000 {
        assert_eq!(
            call(&layer, Some(p.clone())).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // ...and none of them pushed the next slot further away: it is one interval off.
    clock.advance(time::Duration::seconds(1));
    assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    // A caller at exactly the sustained rate passes for ten periods.
    for _ in 0..600 {
        clock.advance(time::Duration::seconds(1));
        assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_idle_period_gives_the_whole_burst_back_across_many_periods() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(5)]).clock(clock.clone());
    let p = principal(ACCOUNT, "a");
    for period in 0..5 {
        for _ in 0..5 {
            assert_eq!(
                call(&layer, Some(p.clone())).await.0,
                StatusCode::OK,
                "{period}"
            );
        }
        assert_eq!(
            call(&layer, Some(p.clone())).await.0,
            StatusCode::TOO_MANY_REQUESTS
        );
        clock.advance(time::Duration::minutes(1));
    }
}

#[tokio::test]
async fn by_account_tokens_share_and_accounts_do_not() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(2)]).clock(clock.clone());
    assert_eq!(
        call(&layer, Some(principal(ACCOUNT, "a"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, Some(principal(ACCOUNT, "b"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, Some(principal(ACCOUNT, "c"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(&layer, Some(principal(OTHER_ACCOUNT, "d"))).await.0,
        StatusCode::OK
    );

    let per_token = RateLimitLayer::new([Quota::per_minute(1)])
        .key(RateKey::Token)
        .clock(clock.clone());
    assert_eq!(
        call(&per_token, Some(principal(ACCOUNT, "a"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&per_token, Some(principal(ACCOUNT, "b"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&per_token, Some(principal(ACCOUNT, "a"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn every_quota_must_allow_and_the_longest_wait_is_told() {
    let clock = clock();
    // 2 a second, 4 a minute.
    let layer =
        RateLimitLayer::new([Quota::per_second(2), Quota::per_minute(4)]).clock(clock.clone());
    let p = principal(ACCOUNT, "a");
    for _ in 0..2 {
        assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    }
    assert_eq!(
        call(&layer, Some(p.clone())).await,
        (StatusCode::TOO_MANY_REQUESTS, Some(1))
    );
    clock.advance(time::Duration::seconds(1));
    for _ in 0..2 {
        assert_eq!(call(&layer, Some(p.clone())).await.0, StatusCode::OK);
    }
    // The minute's four are used: the per-second quota would allow one, the minute's not
    // for another 13 s (one every 15 s: the fourth was taken at 1 s, 45 s of tolerance).
    clock.advance(time::Duration::seconds(1));
    assert_eq!(
        call(&layer, Some(p.clone())).await,
        (StatusCode::TOO_MANY_REQUESTS, Some(13))
    );
}

#[tokio::test]
async fn requests_without_a_principal_pass() {
    let layer = RateLimitLayer::new([Quota::per_minute(1)]).clock(clock());
    for _ in 0..10 {
        assert_eq!(call(&layer, None).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn memory_is_bounded_by_max_keys() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(1)])
        .key(RateKey::Token)
        .max_keys(64)
        .clock(clock.clone());
    for i in 0..5_000 {
        call(&layer, Some(principal(ACCOUNT, &format!("t{i}")))).await;
    }
    layer.buckets.run_pending_tasks();
    assert!(
        layer.buckets.entry_count() <= 64,
        "{}",
        layer.buckets.entry_count()
    );
}

#[test]
fn quotas_are_never_zero() {
    let q = Quota::new(0, Duration::ZERO);
    assert_eq!((q.limit(), q.period()), (1, Duration::from_nanos(1)));
    assert_eq!(q.scaled(), (1, 1, 0));
    let huge = Quota::new(u32::MAX, MAX_PERIOD);
    let (scale, interval, tolerance) = huge.scaled();
    assert_eq!(interval * (scale - 1), tolerance, "exact, no overflow");
}

#[tokio::test]
async fn a_burst_never_exceeds_the_limit_when_the_period_does_not_divide() {
    let clock = clock();
    for (limit, period) in [(4, 10), (3, 10), (7, 100), (70_000, 1_000_000_000)] {
        let layer = RateLimitLayer::new([Quota::new(limit, Duration::from_nanos(period))])
            .clock(clock.clone());
        let p = principal(ACCOUNT, "a");
        let mut passed = 0;
        while call(&layer, Some(p.clone())).await.0 == StatusCode::OK {
            passed += 1;
            assert!(
                passed <= limit,
                "{limit} per {period} ns let {passed} through"
            );
        }
        assert_eq!(passed, limit);
    }
}

#[tokio::test]
async fn the_longest_periods_do_not_panic() {
    let layer = RateLimitLayer::new([Quota::new(1, Duration::MAX)]).clock(clock());
    assert_eq!(layer.quotas()[0].period(), MAX_PERIOD);
    assert_eq!(
        call(&layer, Some(principal(ACCOUNT, "a"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&layer, Some(principal(ACCOUNT, "a"))).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn past_the_cap_a_busy_key_keeps_its_count_while_new_keys_come_and_go() {
    let clock = clock();
    let layer = RateLimitLayer::new([Quota::per_minute(1)])
        .key(RateKey::Token)
        .max_keys(64)
        .clock(clock.clone());
    let busy = principal(ACCOUNT, "busy");
    assert_eq!(call(&layer, Some(busy.clone())).await.0, StatusCode::OK);
    for i in 0..1_000 {
        // Each new key is admitted (its first request passes)...
        let fresh = principal(ACCOUNT, &format!("t{i}"));
        assert_eq!(call(&layer, Some(fresh)).await.0, StatusCode::OK, "{i}");
        // ...and the busy key, used all along, stays limited.
        assert_eq!(
            call(&layer, Some(busy.clone())).await.0,
            StatusCode::TOO_MANY_REQUESTS,
            "{i}"
        );
        layer.buckets.run_pending_tasks();
    }
    assert!(layer.buckets.entry_count() <= 64);
}
