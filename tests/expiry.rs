//! Expired tokens: never counted toward the live caps, listed as expired for the retention
//! (30 days by default), then purged with what they issued, which stops working at once; a
//! user's kept tokens are bounded; and the background purge runs on its period.

mod common;

use std::time::Duration as StdDuration;

use common::{Harness, authenticate, fast_hasher};
use finout_auth::{
    ClientId, ErrorCode, IssuedToken, NewToken, Role, SecretKey, TokenAdmin,
    clock::Clock,
    model::{TokenKind, TokenRecord},
    store::{Batch, TokenFilter, TokenStore},
};
use time::Duration;

const DAY: Duration = Duration::days(1);

async fn issue(admin: &TokenAdmin, h: &Harness, new: NewToken) -> IssuedToken {
    admin
        .issue_personal_token(h.account.id, h.admin_user.id, new)
        .await
        .expect("issue")
}

async fn exists(h: &Harness, id: &ClientId) -> bool {
    h.store.find_token(id).await.unwrap().is_some()
}

#[tokio::test]
async fn a_user_with_99_expired_tokens_and_one_live_issues_a_new_one() {
    let h = Harness::new().await;
    for n in 0..99 {
        issue(
            &h.admin,
            &h,
            NewToken::new(format!("{n}"), Role::Admin).expires_in_minutes(1),
        )
        .await;
    }
    let live = issue(&h.admin, &h, NewToken::new("live", Role::Admin)).await;
    h.clock.advance(Duration::minutes(1));
    let owner = h.authenticate(&live).await.unwrap();
    h.admin
        .acting_as(&owner)
        .issue_personal_token(NewToken::new("new", Role::Admin))
        .await
        .expect("expired tokens are not counted");
    // The expired ones are still listed, as expired, until purged.
    let listed = h
        .admin
        .acting_as(&owner)
        .list_personal_tokens()
        .await
        .unwrap();
    let now = h.clock.now();
    let expired = listed
        .iter()
        .filter(|t| t.expires_at.is_some_and(|at| at <= now));
    assert_eq!((listed.len(), expired.count()), (101, 99));
}

#[tokio::test]
async fn expired_tokens_are_listed_for_the_retention_then_purged() {
    let h = Harness::new().await;
    let short = issue(
        &h.admin,
        &h,
        NewToken::new("short", Role::Admin).expires_in_minutes(1),
    )
    .await;
    let kept = issue(&h.admin, &h, NewToken::new("kept", Role::Admin)).await;
    let expires = short.info.expires_at.unwrap();
    h.clock
        .set(expires + Duration::days(30) - Duration::microseconds(1));
    assert_eq!(
        h.admin.purge_expired().await.unwrap(),
        0,
        "30 days less 1 us"
    );
    let listed = h
        .admin
        .list_tokens(h.account.id, TokenFilter::All)
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "listed while retained");
    h.clock.set(expires + Duration::days(30));
    assert_eq!(h.admin.purge_expired().await.unwrap(), 1);
    assert!(!exists(&h, &short.client_id).await);
    assert!(exists(&h, &kept.client_id).await);
    assert_eq!(h.admin.purge_expired().await.unwrap(), 0, "nothing left");
}

#[tokio::test]
async fn the_retention_is_configurable() {
    let h = Harness::new().await;
    let admin = h
        .admin
        .clone()
        .with_expired_retention(StdDuration::from_secs(3_600));
    let short = issue(
        &admin,
        &h,
        NewToken::new("short", Role::Admin).expires_in_minutes(1),
    )
    .await;
    h.clock.advance(Duration::minutes(1) + Duration::hours(1));
    assert_eq!(admin.purge_expired().await.unwrap(), 1);
    assert!(!exists(&h, &short.client_id).await);
}

/// What an expired token issued goes with it when it is purged, and stops working at once,
/// cached or not: this process's caches are told.
#[tokio::test]
async fn a_purge_deletes_the_lineage_and_stops_it_at_once() {
    let h = Harness::new().await;
    let parent = issue(
        &h.admin,
        &h,
        NewToken::new("parent", Role::Admin).expires_in_minutes(1),
    )
    .await;
    // A set-up may give a token a longer life than its issuer's: purged with it regardless.
    let secret = SecretKey::new("a-child-secret-of-the-set-up");
    let child = TokenRecord::new(
        ClientId::from("child-of-an-expired-token"),
        TokenKind::Api,
        h.account.id,
        None,
        "child",
        Role::Basic,
        fast_hasher().hash(&secret).unwrap(),
        h.clock.now(),
        None,
        None,
    )
    .with_issuer(Some(parent.client_id.clone()));
    h.admin
        .insert_batch(Batch::new().token(child.clone()))
        .await
        .unwrap();
    authenticate(&h.auth, &child.client_id, secret.expose_secret())
        .await
        .expect("works, and is cached now");
    h.clock.advance(Duration::minutes(1) + Duration::days(30));
    assert_eq!(h.admin.purge_expired().await.unwrap(), 2);
    let r = authenticate(&h.auth, &child.client_id, secret.expose_secret()).await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::InvalidCredentials);
}

/// A user keeps at most 1,000 personal tokens, expired included: the 1,000th is stored
/// beside 999 expired ones, the 1,001st purges the longest expired to make room.
#[tokio::test]
async fn a_user_keeps_1_000_tokens_and_the_longest_expired_make_room() {
    let h = Harness::new().await;
    let mut first = None;
    for round in 0..10 {
        // 100 live at a time (the live cap), expired a minute later.
        let n = if round == 9 { 99 } else { 100 };
        for i in 0..n {
            // The very first expires before the others: the longest expired.
            let life = if first.is_none() { 30 } else { 60 };
            let new = NewToken::new(format!("{round}.{i}"), Role::Admin)
                .expires_in(Duration::seconds(life));
            let t = issue(&h.admin, &h, new).await;
            first.get_or_insert(t.client_id);
        }
        h.clock.advance(Duration::minutes(1));
    }
    let count = || async {
        let all = h
            .admin
            .list_tokens(h.account.id, TokenFilter::PersonalOf(h.admin_user.id));
        all.await.unwrap().len()
    };
    issue(&h.admin, &h, NewToken::new("1,000th", Role::Admin)).await;
    assert_eq!(count().await, 1_000, "at the cap: nothing purged");
    let first = first.unwrap();
    assert!(exists(&h, &first).await);
    issue(&h.admin, &h, NewToken::new("1,001st", Role::Admin)).await;
    assert_eq!(count().await, 1_000);
    assert!(!exists(&h, &first).await, "the longest expired made room");
}

/// On tokio's paused time (the period) and the `ManualClock` (the expiry).
#[tokio::test]
async fn the_background_purge_runs_every_period() {
    let h = Harness::new().await;
    let short = issue(
        &h.admin,
        &h,
        NewToken::new("short", Role::Admin).expires_in_minutes(1),
    )
    .await;
    // Paused only now: issuing waits for the hashing thread in real time.
    tokio::time::pause();
    let hour = StdDuration::from_secs(3_600);
    let task = tokio::spawn(h.admin.clone().continuously_purge_expired(hour));
    // The first pass runs at once, with nothing to purge yet.
    tokio::time::sleep(StdDuration::from_secs(1)).await;
    h.clock.advance(Duration::minutes(1) + 30 * DAY);
    tokio::time::sleep(hour - StdDuration::from_secs(2)).await;
    assert!(exists(&h, &short.client_id).await, "not before the period");
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert!(!exists(&h, &short.client_id).await, "purged at the period");
    task.abort();
}
