//! Rotation with a grace period, and disabling and enabling, as two replicas sharing the
//! store see them: `here`, the authenticator the admin invalidates, and `there`, another
//! whose only news of a change is its cache TTL (500 ms here; a change feed does better).

use std::time::{Duration as StdDuration, Instant};

use time::Duration;

use super::{Store, T0};
use crate::{
    admin::{TokenAdmin, error::AdminError},
    authenticator::Authenticator,
    clock::ManualClock,
    credentials::Credentials,
    crypto::SecretHasher,
    error::AuthError,
    model::{AccountId, ClientId, NewToken, Role, SecretKey, TokenKind},
    store::{TokenChange, TokenFilter, TokenStore},
};

/// The other replica's cache TTL: what bounds how late it sees a change.
const THERE_TTL: StdDuration = StdDuration::from_millis(500);
/// How late the other replica may see a change.
const WITHIN: StdDuration = StdDuration::from_secs(1);
const HOUR: StdDuration = StdDuration::from_secs(3600);

fn replica(store: &Store, clock: &ManualClock, ttl: StdDuration) -> Authenticator {
    let read: std::sync::Arc<dyn TokenStore> = store.clone();
    Authenticator::builder(read)
        .hasher(SecretHasher::insecure_for_tests_only())
        .clock(clock.clone())
        .cache_ttl(ttl)
        .uniform_refusals(false)
        .build()
}

struct Replicas {
    here: Authenticator,
    there: Authenticator,
    admin: TokenAdmin,
    clock: ManualClock,
}

fn replicas(store: &Store) -> Replicas {
    let clock = ManualClock::new(T0);
    let here = replica(store, &clock, StdDuration::from_secs(60));
    let there = replica(store, &clock, THERE_TTL);
    let admin = TokenAdmin::new(store.clone())
        .with_hasher(SecretHasher::insecure_for_tests_only())
        .with_authenticator(here.clone());
    Replicas {
        here,
        there,
        admin,
        clock,
    }
}

async fn answer(auth: &Authenticator, id: &ClientId, secret: &SecretKey) -> Result<(), AuthError> {
    let credentials = Credentials::new(id.as_str(), secret.expose_secret())?;
    auth.authenticate(credentials).await.map(drop)
}

#[track_caller]
fn admitted(outcome: Result<(), AuthError>, what: &str) {
    assert!(outcome.is_ok(), "{what}: {outcome:?}");
}

#[track_caller]
fn refused(outcome: Result<(), AuthError>, what: &str) {
    assert!(
        matches!(outcome, Err(AuthError::InvalidCredentials)),
        "{what}: {outcome:?}"
    );
}

/// Ask `auth` until it answers `admit` (admitted or `invalid_credentials`), at most
/// [`WITHIN`]; panics past it.
async fn within(auth: &Authenticator, id: &ClientId, secret: &SecretKey, admit: bool, what: &str) {
    let started = Instant::now();
    loop {
        let outcome = answer(auth, id, secret).await;
        if outcome.is_ok() == admit {
            if !admit {
                refused(outcome, what);
            }
            return;
        }
        assert!(
            started.elapsed() <= WITHIN,
            "{what}: still {outcome:?} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

async fn api_token(admin: &TokenAdmin, account: AccountId) -> (ClientId, SecretKey) {
    let new = NewToken::new("rotating", Role::Basic).expires_in(Duration::days(30));
    let issued = admin
        .issue_api_token(account, None, new)
        .await
        .expect("issue");
    (issued.client_id, issued.secret_key)
}

/// Rotation keeps the token (client id, role, expiry, lineage) and gives the replaced secret
/// its grace on both replicas; past the grace no cache of either admits it; rotating again
/// ends the earlier grace; a grace of zero ends it at once; the grace is capped at 7 days;
/// the store's `update_token` finds only the account's own tokens.
pub async fn rotation_has_a_grace_on_every_replica(store: Store) {
    let Replicas {
        here,
        there,
        admin,
        clock,
    } = replicas(&store);
    let account = admin.create_account("Rotation").await.expect("account");
    let (id, old) = api_token(&admin, account.id).await;
    let before = admin
        .list_tokens(account.id, TokenFilter::Api)
        .await
        .unwrap();
    admitted(answer(&here, &id, &old).await, "here, before");
    admitted(answer(&there, &id, &old).await, "there, before");

    let rotated = admin
        .rotate_secret(account.id, &id, HOUR)
        .await
        .expect("rotate");
    let new = rotated.secret_key;
    assert_eq!(rotated.client_id, id);
    assert_ne!(new.expose_secret(), old.expose_secret());
    let grace_end = T0 + Duration::hours(1);
    assert_eq!(rotated.info.previous_secret_valid_until, Some(grace_end));
    let after = admin
        .list_tokens(account.id, TokenFilter::Api)
        .await
        .unwrap();
    let (b, a) = (&before[0], &after[0]);
    assert_eq!(
        (
            &a.client_id,
            &a.role,
            a.expires_at,
            &a.issued_by,
            a.created_at
        ),
        (
            &b.client_id,
            &b.role,
            b.expires_at,
            &b.issued_by,
            b.created_at
        ),
        "rotation keeps the token"
    );
    assert_eq!(a.previous_secret_valid_until, Some(grace_end));

    // In the grace: both secrets, at once here, and the new one within the TTL there.
    admitted(answer(&here, &id, &new).await, "here, new");
    admitted(answer(&here, &id, &old).await, "here, old in its grace");
    within(&there, &id, &new, true, "there, new").await;
    admitted(answer(&there, &id, &old).await, "there, old in its grace");
    // Both hot now, on both replicas: repeat from the caches.
    for auth in [&here, &there] {
        for secret in [&new, &old, &new, &old] {
            admitted(
                answer(auth, &id, secret).await,
                "from the cache, in the grace",
            );
        }
    }

    // The grace ends: no cache of either replica admits the old secret, a moment later either.
    clock.advance(Duration::hours(1));
    for (auth, what) in [(&here, "here"), (&there, "there")] {
        refused(answer(auth, &id, &old).await, what);
        refused(answer(auth, &id, &old).await, what);
        admitted(answer(auth, &id, &new).await, what);
        refused(answer(auth, &id, &old).await, what);
    }

    // A second rotation during a grace ends the first grace: at most two secrets.
    let newer = admin
        .rotate_secret(account.id, &id, HOUR)
        .await
        .unwrap()
        .secret_key;
    admitted(answer(&here, &id, &newer).await, "here, newer");
    admitted(answer(&here, &id, &new).await, "here, new in its grace");
    within(&there, &id, &newer, true, "there, newer").await;
    let newest = admin
        .rotate_secret(account.id, &id, HOUR)
        .await
        .unwrap()
        .secret_key;
    refused(
        answer(&here, &id, &new).await,
        "here, new after a second rotation",
    );
    admitted(answer(&here, &id, &newer).await, "here, newer in its grace");
    admitted(answer(&here, &id, &newest).await, "here, newest");
    within(
        &there,
        &id,
        &new,
        false,
        "there, new after a second rotation",
    )
    .await;
    admitted(
        answer(&there, &id, &newer).await,
        "there, newer in its grace",
    );
    refused(answer(&there, &id, &old).await, "there, old");

    // No grace: the replaced secret stops at once here, within the TTL there.
    let last = admin
        .rotate_secret(account.id, &id, StdDuration::ZERO)
        .await
        .unwrap();
    assert_eq!(last.info.previous_secret_valid_until, None);
    refused(answer(&here, &id, &newest).await, "here, no grace");
    refused(answer(&here, &id, &newer).await, "here, no grace, older");
    admitted(answer(&here, &id, &last.secret_key).await, "here, last");
    within(&there, &id, &newest, false, "there, no grace").await;
    admitted(answer(&there, &id, &last.secret_key).await, "there, last");

    // Capped at 7 days; another account's token, or none, is not found.
    let week = StdDuration::from_secs(7 * 86_400);
    assert!(admin.rotate_secret(account.id, &id, week).await.is_ok());
    assert!(matches!(
        admin
            .rotate_secret(account.id, &id, week + StdDuration::from_secs(1))
            .await,
        Err(AdminError::Invalid(crate::InvalidRequest::RotationGrace))
    ));
    let elsewhere = admin.create_account("Elsewhere").await.unwrap();
    assert!(matches!(
        admin.rotate_secret(elsewhere.id, &id, HOUR).await,
        Err(AdminError::NotFound("token"))
    ));
    let change = TokenChange::Enable;
    assert_eq!(
        store
            .update_token(elsewhere.id, &id, change.clone())
            .await
            .unwrap(),
        None
    );
    let unknown = ClientId::from(uuid::Uuid::new_v4().to_string());
    assert_eq!(
        store
            .update_token(account.id, &unknown, change)
            .await
            .unwrap(),
        None
    );
}

/// A disabled token is refused (`invalid_credentials`) at once by the replica that disabled
/// it and within the TTL by the other, kept and listed with its `disabled_at`; enabling
/// restores it likewise; a rotation keeps it disabled; a personal token disables the same.
pub async fn disable_and_enable_on_every_replica(store: Store) {
    let Replicas {
        here,
        there,
        admin,
        clock,
    } = replicas(&store);
    let account = admin.create_account("Disable").await.expect("account");
    let (id, secret) = api_token(&admin, account.id).await;
    admitted(answer(&here, &id, &secret).await, "here, before");
    admitted(answer(&there, &id, &secret).await, "there, before");

    clock.advance(Duration::minutes(5));
    let disabled = admin.disable_token(account.id, &id).await.expect("disable");
    assert_eq!(disabled.disabled_at, Some(T0 + Duration::minutes(5)));
    refused(answer(&here, &id, &secret).await, "here, disabled");
    within(&there, &id, &secret, false, "there, disabled").await;
    for auth in [&here, &there] {
        refused(answer(auth, &id, &secret).await, "disabled, again");
    }
    // Disabling again keeps the first time; the token is listed, disabled.
    clock.advance(Duration::minutes(5));
    let again = admin.disable_token(account.id, &id).await.unwrap();
    assert_eq!(again.disabled_at, disabled.disabled_at);
    let listed = admin
        .list_tokens(account.id, TokenFilter::Api)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_id, id);
    assert_eq!(listed[0].disabled_at, disabled.disabled_at);
    // A rotation keeps it disabled.
    let rotated = admin.rotate_secret(account.id, &id, HOUR).await.unwrap();
    assert_eq!(rotated.info.disabled_at, disabled.disabled_at);
    refused(
        answer(&here, &id, &rotated.secret_key).await,
        "rotated while disabled",
    );

    let enabled = admin.enable_token(account.id, &id).await.expect("enable");
    assert_eq!(enabled.disabled_at, None);
    admitted(
        answer(&here, &id, &rotated.secret_key).await,
        "here, enabled",
    );
    admitted(
        answer(&here, &id, &secret).await,
        "here, enabled, old in its grace",
    );
    within(&there, &id, &rotated.secret_key, true, "there, enabled").await;
    admitted(
        answer(&there, &id, &secret).await,
        "there, old in its grace",
    );

    // A personal token, the same way.
    let user = super::user(&store, account.id, vec![Role::Admin]).await;
    let personal = admin
        .issue_personal_token(account.id, user.id, NewToken::new("mine", Role::Basic))
        .await
        .unwrap();
    assert_eq!(personal.info.kind, TokenKind::Personal);
    let (pid, psecret) = (personal.client_id, personal.secret_key);
    admitted(answer(&here, &pid, &psecret).await, "personal, before");
    admin.disable_token(account.id, &pid).await.unwrap();
    refused(answer(&here, &pid, &psecret).await, "personal, disabled");
    admin.enable_token(account.id, &pid).await.unwrap();
    admitted(answer(&here, &pid, &psecret).await, "personal, enabled");
    let elsewhere = admin.create_account("Elsewhere").await.unwrap();
    assert!(matches!(
        admin.disable_token(elsewhere.id, &pid).await,
        Err(AdminError::NotFound("token"))
    ));
}
