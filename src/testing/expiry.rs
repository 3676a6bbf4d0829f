//! Conformance checks for expired tokens (never counted toward the live caps, purged after
//! a retention with what they issued, the longest expired first, and purged to make room
//! past the retention caps) and for the cap on users per account.
//!
//! A purge is store-wide, and one database may serve many checks (and keep what earlier runs
//! left): the purge checks use expiries of their own, decades before any other check's, and
//! assert only about their own tokens. The two purge checks also exclude each other: the
//! one-at-a-time check's cutoff is past the other's expiries, so run side by side it would
//! purge the token the other keeps.

use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime, macros::datetime};

use super::{Store, T0, account, api_record, personal_record, user};
use crate::{
    error::StoreError,
    model::{ClientId, Role, TokenRecord, User, UserId},
    store::{TokenLimits, UserLimits},
};

fn ids<'a>(ids: impl IntoIterator<Item = &'a ClientId>) -> BTreeSet<ClientId> {
    ids.into_iter().cloned().collect()
}

/// Held by each purge check for its whole run (the tests of one binary share it).
static PURGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn exists(store: &Store, id: &ClientId) -> bool {
    store.find_token(id).await.expect("find").is_some()
}

/// A time in `year`, at a random second (so that runs sharing a database do not meet), with
/// a fraction of a second (so that text timestamps must compare by value).
fn era(year: i32) -> OffsetDateTime {
    let second = uuid::Uuid::new_v4().as_u128() % (300 * 86_400);
    datetime!(1970-01-01 0:00:00.5 UTC)
        .replace_year(year)
        .expect("a valid year")
        + Duration::seconds(second as i64)
}

fn at(
    mut record: TokenRecord,
    created: OffsetDateTime,
    expires: Option<OffsetDateTime>,
) -> TokenRecord {
    record.created_at = created;
    record.expires_at = expires;
    record
}

/// The live caps count tokens not expired at the new token's `created_at`: one expiring
/// exactly then is expired (expiry is exclusive), one a microsecond later is live, and a
/// whole-second expiry compares by value with a fractional issue time.
pub async fn expired_tokens_do_not_count_toward_the_caps(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let limits = TokenLimits::default().per_user(2).per_account(3);
    let whole = datetime!(2026-03-01 12:00:10 UTC);
    let first = at(personal_record(&u, 1), T0, Some(whole));
    let second = at(
        personal_record(&u, 2),
        T0,
        Some(whole + Duration::microseconds(1)),
    );
    for t in [&first, &second] {
        store
            .insert_token(t.clone(), limits)
            .await
            .expect("within the cap");
    }
    let early = at(
        personal_record(&u, 3),
        whole - Duration::microseconds(1),
        None,
    );
    let r = store.insert_token(early, limits).await;
    assert!(
        matches!(r, Err(StoreError::LimitReached(_))),
        "both live: {r:?}"
    );
    // At `whole` the first has expired: room for one, not two.
    let third = at(personal_record(&u, 4), whole, None);
    store
        .insert_token(third.clone(), limits)
        .await
        .expect("the first has expired");
    let fourth = at(personal_record(&u, 5), whole, None);
    let r = store.insert_token(fourth, limits).await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    // Half a second later the second has expired too (a fraction against a whole second).
    let later = whole + Duration::milliseconds(500);
    store
        .insert_token(at(personal_record(&u, 6), later, None), limits)
        .await
        .expect("the second has expired");
    // The account: 2 live personal tokens and 2 expired; one API token fills its 3.
    store
        .insert_token(at(api_record(a.id, 7), later, None), limits)
        .await
        .expect("expired tokens leave room in the account");
    let r = store
        .insert_token(at(api_record(a.id, 8), later, None), limits)
        .await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    // Expired tokens are still there, listed, until purged.
    let listed = store
        .list_tokens(a.id, crate::store::TokenFilter::PersonalOf(u.id))
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
    assert!(exists(&store, &first.client_id).await);
}

/// `purge_expired` deletes the tokens expired at or before the cutoff (to the microsecond),
/// in every account, each with the tokens it issued (reported apart), and keeps the rest; a
/// second purge finds none of them.
pub async fn purge_deletes_what_expired_by_the_cutoff(store: Store) {
    let _alone = PURGES.lock().await;
    let cutoff = era(1975);
    let (a, b) = (account(&store).await, account(&store).await);
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let long_ago = at(
        api_record(a.id, 1),
        cutoff - Duration::days(2),
        Some(cutoff - Duration::days(1)),
    );
    let child = at(api_record(a.id, 2), cutoff - Duration::days(2), None)
        .with_issuer(Some(long_ago.client_id.clone()));
    let at_cutoff = at(
        personal_record(&u, 3),
        cutoff - Duration::days(2),
        Some(cutoff),
    );
    let after = at(
        api_record(a.id, 4),
        cutoff - Duration::days(2),
        Some(cutoff + Duration::microseconds(1)),
    );
    let never = at(api_record(a.id, 5), cutoff - Duration::days(2), None);
    let elsewhere = at(
        api_record(b.id, 6),
        cutoff - Duration::days(2),
        Some(cutoff - Duration::hours(1)),
    );
    for t in [&long_ago, &child, &at_cutoff, &after, &never, &elsewhere] {
        store
            .insert_token(t.clone(), TokenLimits::default())
            .await
            .expect("insert");
    }
    let purged = store.purge_expired(cutoff, u32::MAX).await.expect("purge");
    let expired = ids(&purged.expired);
    let mine = ids([
        &long_ago.client_id,
        &at_cutoff.client_id,
        &elsewhere.client_id,
    ]);
    assert!(expired.is_superset(&mine), "{purged:?}");
    assert!(ids(&purged.issued).contains(&child.client_id), "{purged:?}");
    for kept in [&after, &never] {
        assert!(!ids(purged.all()).contains(&kept.client_id), "{kept:?}");
        assert!(exists(&store, &kept.client_id).await, "{kept:?}");
    }
    for gone in [&long_ago, &child, &at_cutoff, &elsewhere] {
        assert!(!exists(&store, &gone.client_id).await, "{gone:?}");
    }
    let again = store.purge_expired(cutoff, u32::MAX).await.expect("purge");
    let mine = ids([&long_ago.client_id, &child.client_id, &at_cutoff.client_id]);
    assert!(ids(again.all()).is_disjoint(&mine), "{again:?}");
}

/// A purge of at most `max` takes the longest expired first: one at a time, a token is never
/// gone while one that expired before it is still there.
pub async fn purge_takes_the_longest_expired_first(store: Store) {
    let _alone = PURGES.lock().await;
    let base = era(1978);
    let a = account(&store).await;
    let tokens: Vec<TokenRecord> = (0..3)
        .map(|n| {
            let expires = base + Duration::seconds(i64::from(n));
            at(api_record(a.id, n), base - Duration::days(1), Some(expires))
        })
        .collect();
    for t in &tokens {
        store
            .insert_token(t.clone(), TokenLimits::default())
            .await
            .expect("insert");
    }
    let cutoff = base + Duration::seconds(2);
    // Tokens other runs left before these go first; each pass takes exactly one.
    for _ in 0..10_000 {
        let purged = store.purge_expired(cutoff, 1).await.expect("purge");
        assert_eq!(purged.expired.len(), 1, "one asked, one due: {purged:?}");
        let mut there = Vec::new();
        for t in &tokens {
            there.push(exists(&store, &t.client_id).await);
        }
        assert!(
            there.windows(2).all(|w| w[1] || !w[0]),
            "a later expiry went first: {there:?}"
        );
        if !there[2] {
            return;
        }
    }
    panic!("10,000 purges of one left this check's tokens");
}

/// Past a retention cap, an insert purges the longest-expired tokens of the user (or the
/// account) to make room, with what they issued, and reports them; a refused insert purges
/// nothing.
pub async fn insert_makes_room_among_expired_tokens(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let limits = TokenLimits::default()
        .per_user(2)
        .retained_per_user(3)
        .per_account(100)
        .retained_per_account(100);
    let (soon, sooner) = (T0 + Duration::seconds(2), T0 + Duration::seconds(1));
    let oldest = at(personal_record(&u, 1), T0, Some(sooner));
    let issued = at(api_record(a.id, 2), T0, None).with_issuer(Some(oldest.client_id.clone()));
    let old = at(personal_record(&u, 3), T0, Some(soon));
    let later = T0 + Duration::hours(1);
    let live = at(personal_record(&u, 4), later, None);
    for t in [&oldest, &issued, &old, &live] {
        store.insert_token(t.clone(), limits).await.expect("insert");
    }
    let purged = store
        .insert_token_purging(at(personal_record(&u, 5), later, None), limits)
        .await
        .expect("room made");
    assert_eq!(purged.expired, vec![oldest.client_id.clone()]);
    assert_eq!(purged.issued, vec![issued.client_id.clone()]);
    assert!(!exists(&store, &issued.client_id).await);
    // Two live now: refused, and `old` stays.
    let r = store
        .insert_token_purging(at(personal_record(&u, 6), later, None), limits)
        .await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    assert!(
        exists(&store, &old.client_id).await,
        "a refused insert purges nothing"
    );

    // The account's cap, the same way.
    let b = account(&store).await;
    let limits = TokenLimits::default()
        .per_account(2)
        .retained_per_account(3);
    let expired = [
        at(api_record(b.id, 7), T0, Some(sooner)),
        at(api_record(b.id, 8), T0, Some(soon)),
    ];
    for t in expired
        .iter()
        .chain([&at(api_record(b.id, 9), later, None)])
    {
        store.insert_token(t.clone(), limits).await.expect("insert");
    }
    let purged = store
        .insert_token_purging(at(api_record(b.id, 10), later, None), limits)
        .await
        .expect("room made");
    assert_eq!(purged.expired, vec![expired[0].client_id.clone()]);
    assert!(exists(&store, &expired[1].client_id).await);
}

fn new_user(account: crate::model::AccountId, n: usize) -> User {
    User::new(
        UserId::new_v4(),
        account,
        format!("u{n}@limit.test"),
        vec![Role::Basic],
    )
}

/// `insert_user_within` refuses past `per_account` users (`LimitReached`), counts only its
/// account, and holds under concurrent adds: exactly the cap's number succeed.
pub async fn users_per_account_are_capped(store: Store) {
    let a = account(&store).await;
    let limits = UserLimits::default().per_account(2);
    for n in 0..2 {
        store
            .insert_user_within(new_user(a.id, n), limits)
            .await
            .expect("within the cap");
    }
    let r = store.insert_user_within(new_user(a.id, 2), limits).await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    assert_eq!(store.list_users(a.id).await.unwrap().len(), 2);
    let b = account(&store).await;
    store
        .insert_user_within(new_user(b.id, 0), limits)
        .await
        .expect("another account is not counted");

    let c = account(&store).await;
    let limits = UserLimits::default().per_account(5);
    let adds: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_user_within(new_user(c.id, n), limits).await })
        })
        .collect();
    let mut added = 0;
    for add in adds {
        match add.await.unwrap() {
            Ok(()) => added += 1,
            Err(StoreError::LimitReached(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(added, 5);
    assert_eq!(store.list_users(c.id).await.unwrap().len(), 5);
}
