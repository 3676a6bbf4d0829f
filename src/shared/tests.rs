use std::{convert::Infallible, time::Duration};

use http::{Request, Response, StatusCode};
use time::macros::datetime;
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::{
    clock::ManualClock,
    middleware::{Quota, RateLimitLayer, TokenConcurrencyLimitLayer},
    model::{AccountId, ClientId, Principal, Role},
};

fn principal(client_id: &str) -> Principal {
    Principal::account(
        AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a1")),
        Role::ReadOnly,
        ClientId::from(client_id),
    )
}

async fn status(layer: &RateLimitLayer, client_id: &str) -> StatusCode {
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let mut request = Request::new(());
    request.extensions_mut().insert(principal(client_id));
    service.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn three_replicas_sharing_one_state_admit_what_one_admits() {
    let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
    let state = MemoryShared::new();
    let replica = || {
        RateLimitLayer::new([Quota::per_minute(10)])
            .clock(clock.clone())
            .shared(Shared::new(state.clone()), "route")
    };
    let replicas = [replica(), replica(), replica()];
    let mut admitted = 0;
    for i in 0..30 {
        if status(&replicas[i % 3], "a").await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10, "one burst of 10 for the three together");
    // A restarted replica (a new layer) gets no fresh allowance.
    let restarted = replica();
    assert_eq!(status(&restarted, "a").await, StatusCode::TOO_MANY_REQUESTS);
    // One interval later, one more, wherever it lands.
    clock.advance(time::Duration::seconds(6));
    assert_eq!(status(&restarted, "a").await, StatusCode::OK);
    assert_eq!(
        status(&replicas[0], "a").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn a_state_down_falls_back_to_the_process_and_is_used_again_when_back() {
    let state = MemoryShared::new();
    let shared = Shared::new(state.clone()).breaker(2, Duration::from_secs(1));
    let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
    let layer = RateLimitLayer::new([Quota::per_minute(3)])
        .clock(clock.clone())
        .shared(shared.clone(), "route");
    // Two requests counted in the shared state.
    for _ in 0..2 {
        assert_eq!(status(&layer, "a").await, StatusCode::OK);
    }
    state.set_down(true);
    // Down: the process's own counts (fresh: 3 more), no error answered.
    let calls = state.calls();
    for _ in 0..3 {
        assert_eq!(status(&layer, "a").await, StatusCode::OK);
    }
    assert_eq!(status(&layer, "a").await, StatusCode::TOO_MANY_REQUESTS);
    assert!(!shared.is_available(), "the breaker opened");
    assert_eq!(
        state.calls() - calls,
        2,
        "no call while the breaker is open"
    );
    // Back: within the pause, the shared counts decide again (1 left there).
    state.set_down(false);
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert_eq!(status(&layer, "a").await, StatusCode::OK);
    assert!(shared.is_available());
    assert_eq!(status(&layer, "a").await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn shared_slots_are_leased_and_a_crashed_replicas_come_back() {
    let state = MemoryShared::new();
    let lease = Duration::from_millis(300);
    let layer = TokenConcurrencyLimitLayer::new(2)
        .shared(Shared::new(state.clone()))
        .lease(lease);
    // A replica that took a slot and crashed: never released.
    assert!(
        state
            .acquire_slot("slots:a", "crashed", 2, lease, None)
            .await
            .unwrap()
    );
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Arc::new(tokio::sync::Mutex::new(Some(released)));
    let service = layer.layer(service_fn(move |_: Request<()>| {
        let released = released.clone();
        async move {
            let wait = released.lock().await.take();
            if let Some(wait) = wait {
                let _ = wait.await;
            }
            Ok::<_, Infallible>(Response::new(()))
        }
    }));
    let request = || {
        let mut request = Request::new(());
        request.extensions_mut().insert(principal("a"));
        request
    };
    // One held (longer than a lease: renewed), one crashed: the third is refused.
    let held = tokio::spawn(service.clone().oneshot(request()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    // Past the crashed slot's lease its slot is free again.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The held request's lease was renewed, and an answer holds its slot until its body is
    // dropped: two in flight, the next is refused.
    let refused = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(response);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let next = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    drop(next);
    let _ = release.send(());
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
}
