//! The store conformance suite against every store, and what only persistent and shared
//! stores can show: durability, cross-replica invalidation, outages and recovery.
//!
//! PostgreSQL tests run when `FINOUT_AUTH_TEST_DATABASE_URL` is set (`.ci/run` sets it)
//! and print why they skip otherwise.

mod common;

use std::{sync::Arc, time::Duration};

use finout_auth::{
    AuthError, Authenticator, ErrorCode, NewToken, Role, TokenAdmin,
    store::{MemoryTokenStore, PostgresTokenStore, SqliteTokenStore, TokenAdminStore},
};

fn database_url() -> Option<String> {
    match std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
            );
            None
        }
    }
}

async fn postgres() -> Option<PostgresTokenStore> {
    let url = database_url()?;
    Some(
        PostgresTokenStore::connect(&url)
            .await
            .expect("connect to PostgreSQL"),
    )
}

/// A fresh SQLite file that lives as long as the returned directory.
async fn sqlite_file() -> (tempfile::TempDir, String, SqliteTokenStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    (dir, url, store)
}

finout_auth::token_store_conformance!(memory, async {
    Some(Arc::new(MemoryTokenStore::new()) as Arc<dyn TokenAdminStore>)
});

finout_auth::token_store_conformance!(sqlite, async {
    // Leak the directory: the test process ends soon, and the OS cleans its temp dir.
    let (dir, _, store) = sqlite_file().await;
    std::mem::forget(dir);
    Some(Arc::new(store) as Arc<dyn TokenAdminStore>)
});

finout_auth::token_store_conformance!(postgres_store, async {
    postgres()
        .await
        .map(|s| Arc::new(s) as Arc<dyn TokenAdminStore>)
});

/// An admin for bulk writes: fast argon2, no caps, and a hashing line long enough for the
/// concurrent issues these tests make (the default answers `auth_busy` past 17).
fn fast_admin(store: Arc<dyn TokenAdminStore>) -> TokenAdmin {
    TokenAdmin::new(store)
        .with_hasher(common::fast_hasher())
        .with_token_limits(finout_auth::store::TokenLimits::unlimited())
        .with_issuance_pool(1, 256, Duration::from_secs(30))
}

/// An authenticator with fast argon2 whose refusals are answered when decided: these tests
/// check what the stores say, not when a refusal goes out.
fn fast_auth(store: Arc<dyn finout_auth::store::TokenStore>) -> Authenticator {
    Authenticator::builder(store)
        .hasher(common::fast_hasher())
        .uniform_refusals(false)
        .build()
}

#[tokio::test]
async fn sqlite_issued_tokens_survive_a_restart() {
    let (_dir, url, store) = sqlite_file().await;
    let admin = fast_admin(Arc::new(store.clone()));
    let account = admin.create_account("Durable").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("durable", Role::Basic))
        .await
        .unwrap();
    store.pool().close().await;
    drop(admin);

    let reopened = SqliteTokenStore::connect(&url).await.unwrap();
    let auth = fast_auth(Arc::new(reopened));
    let p = common::authenticate(&auth, &token.client_id, token.secret_key.expose_secret())
        .await
        .expect("the token is still there");
    assert_eq!(p.account_id(), account.id);
}

#[tokio::test]
async fn sqlite_migrations_are_idempotent() {
    let (_dir, url, store) = sqlite_file().await;
    store.migrate().await.unwrap();
    SqliteTokenStore::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_sqlite_file_of_the_first_schema_upgrades_in_place() {
    // A database as the first release left it: only the first migration applied, one user.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("migrations");
    std::fs::create_dir(&first).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/migrations/sqlite/20261128000001_init.sql"
        ),
        first.join("20261128000001_init.sql"),
    )
    .unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(first.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let (account, user) = (
        finout_auth::AccountId::new_v4(),
        finout_auth::UserId::new_v4(),
    );
    sqlx::query("INSERT INTO finout_auth_accounts (id, name) VALUES ($1, 'Old')")
        .bind(account.to_string())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO finout_auth_users (id, account_id, email, roles) \
         VALUES ($1, $2, 'old@acme.test', '[\"Basic\"]')",
    )
    .bind(user.to_string())
    .bind(account.to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteTokenStore::connect(&url).await.expect("upgrade");
    let found = store.get_user(account, user).await.unwrap().expect("kept");
    assert_eq!(found.roles, vec![Role::Basic]);
    assert_eq!(
        found.data_access,
        finout_auth::model::DataAccess::All,
        "old users see everything"
    );
}

/// Poll until `check` holds, for at most `within`.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rejected(auth: &Authenticator, token: &finout_auth::IssuedToken) -> Option<ErrorCode> {
    common::authenticate(auth, &token.client_id, token.secret_key.expose_secret())
        .await
        .err()
        .map(|e: AuthError| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revoke_on_one_replica_is_seen_by_the_other_within_a_second() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    // Two replicas: separate pools, separate authenticators, a long cache TTL, so only the
    // change feed can explain a quick rejection.
    let build = |store: &PostgresTokenStore| {
        Authenticator::builder(Arc::new(store.clone()))
            .hasher(common::fast_hasher())
            .uniform_refusals(false)
            .cache_ttl(Duration::from_secs(3600))
            .build()
    };
    let (auth_one, auth_two) = (build(&one), build(&two));
    let _feed_one = one.listen([auth_one.clone()]).await.unwrap();
    let _feed_two = two.listen([auth_two.clone()]).await.unwrap();
    let admin_one = fast_admin(Arc::new(one.clone())).with_authenticator(auth_one.clone());

    let account = admin_one.create_account("Replicas").await.unwrap();
    let user = admin_one
        .add_user(account.id, "r@replicas.test", vec![Role::Admin])
        .await
        .unwrap();
    let revoked = admin_one
        .issue_api_token(account.id, None, NewToken::new("revoked", Role::Basic))
        .await
        .unwrap();
    let personal = admin_one
        .issue_personal_token(account.id, user.id, NewToken::new("p", Role::Admin))
        .await
        .unwrap();
    for auth in [&auth_one, &auth_two] {
        for token in [&revoked, &personal] {
            assert_eq!(rejected(auth, token).await, None, "cached on both replicas");
        }
    }

    admin_one
        .revoke_token(account.id, &revoked.client_id)
        .await
        .unwrap();
    assert_eq!(
        rejected(&auth_one, &revoked).await,
        Some(ErrorCode::InvalidCredentials)
    );
    assert!(
        eventually(Duration::from_secs(1), async || rejected(
            &auth_two, &revoked
        )
        .await
            == Some(ErrorCode::InvalidCredentials))
        .await,
        "the other replica still admits a revoked token after 1 s"
    );

    // A role change reaches the other replica too.
    admin_one
        .set_user_roles(account.id, user.id, vec![Role::ReadOnly])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), async || {
            let p = common::authenticate(
                &auth_two,
                &personal.client_id,
                personal.secret_key.expose_secret(),
            )
            .await
            .unwrap();
            !p.is_admin_user()
        })
        .await,
        "the other replica still sees the old roles after 1 s"
    );

    // And a user removal.
    admin_one.remove_user(account.id, user.id).await.unwrap();
    assert!(
        eventually(Duration::from_secs(1), async || rejected(
            &auth_two, &personal
        )
        .await
            == Some(ErrorCode::InvalidCredentials))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_reconnects_after_its_connection_is_killed() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    let auth_two = Authenticator::builder(Arc::new(two.clone()))
        .hasher(common::fast_hasher())
        .uniform_refusals(false)
        .cache_ttl(Duration::from_secs(3600))
        .build();
    let feed = two.listen([auth_two.clone()]).await.unwrap();
    let admin = fast_admin(Arc::new(one.clone()));
    let account = admin.create_account("Reconnect").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("t", Role::Basic))
        .await
        .unwrap();
    assert_eq!(rejected(&auth_two, &token).await, None);

    // Kill the change feed's connection, as a network blip or a failover would.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(feed.application_name())
    .fetch_all(one.pool())
    .await
    .unwrap();
    assert_eq!(killed, vec![(true,)], "exactly the listener's connection");

    // The listener reconnects (within about a second) and later revokes get through.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rejected(&auth_two, &token).await, None);
    admin
        .revoke_token(account.id, &token.client_id)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), async || rejected(&auth_two, &token)
            .await
            == Some(ErrorCode::InvalidCredentials))
        .await,
        "a revoke after the reconnect did not reach the replica"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_issuing_from_two_replicas_never_collides() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    let admin_one = fast_admin(Arc::new(one));
    let admin_two = fast_admin(Arc::new(two));
    let account = admin_one.create_account("Concurrent").await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let admin = if i % 2 == 0 {
                admin_one.clone()
            } else {
                admin_two.clone()
            };
            tokio::spawn(async move {
                admin
                    .issue_api_token(
                        account.id,
                        None,
                        NewToken::new(format!("t{i}"), Role::Basic),
                    )
                    .await
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().expect("issued").client_id);
    }
    assert_eq!(ids.len(), 40);
    let listed = admin_one
        .list_tokens(account.id, finout_auth::store::TokenFilter::Api)
        .await
        .unwrap();
    assert_eq!(listed.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_change_feed_the_cache_ttl_bounds_staleness() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    let auth_two = Authenticator::builder(Arc::new(two))
        .hasher(common::fast_hasher())
        .uniform_refusals(false)
        .cache_ttl(Duration::from_millis(300))
        .build();
    let admin = fast_admin(Arc::new(one));
    let account = admin.create_account("Ttl").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("t", Role::Basic))
        .await
        .unwrap();
    assert_eq!(rejected(&auth_two, &token).await, None);
    admin
        .revoke_token(account.id, &token.client_id)
        .await
        .unwrap();
    // No listener on replica two: it learns only when its cached entry expires.
    assert!(
        eventually(Duration::from_secs(2), async || rejected(&auth_two, &token)
            .await
            == Some(ErrorCode::InvalidCredentials))
        .await
    );
}

/// A TCP proxy to PostgreSQL that can be cut, to play an unreachable database.
struct Proxy {
    addr: std::net::SocketAddr,
    down: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                if *watch.borrow() {
                    continue; // refused: dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|down| *down) => {} // cut: both ends dropped
                    }
                });
            }
        });
        Proxy { addr, down }
    }

    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_closed_keeps_cached_tokens_and_recovers() {
    let Some(url) = database_url() else { return };
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(upstream).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options.clone().host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap();
    let store = PostgresTokenStore::from_pool(pool);
    store.migrate().await.unwrap();
    let auth = Authenticator::builder(Arc::new(store.clone()))
        .hasher(common::fast_hasher())
        .uniform_refusals(false)
        .build();
    let admin = fast_admin(Arc::new(store));
    let account = admin.create_account("Outage").await.unwrap();
    let cached = admin
        .issue_api_token(account.id, None, NewToken::new("cached", Role::Basic))
        .await
        .unwrap();
    let uncached = admin
        .issue_api_token(account.id, None, NewToken::new("uncached", Role::Basic))
        .await
        .unwrap();
    assert_eq!(rejected(&auth, &cached).await, None);

    proxy.set_down(true);
    assert_eq!(
        rejected(&auth, &uncached).await,
        Some(ErrorCode::AuthUnavailable)
    );
    assert_eq!(
        rejected(&auth, &cached).await,
        None,
        "cached tokens keep working"
    );

    proxy.set_down(false);
    assert!(
        eventually(Duration::from_secs(10), async || rejected(&auth, &uncached)
            .await
            .is_none())
        .await,
        "did not recover after the database came back"
    );
}

/// Issue a personal token and remove its user at the same time, `rounds` times, while a third
/// task keeps authenticating with the token as soon as it exists: once both are done, the
/// token must never authenticate again (a token the removal missed would stay cached, its
/// invalidation never sent).
async fn issue_racing_removal(store: Arc<dyn TokenAdminStore>, rounds: usize) {
    let auth = fast_auth(store.clone());
    let admin = fast_admin(store).with_authenticator(auth.clone());
    let account = admin.create_account("Race").await.unwrap();
    let mut issued = 0;
    for round in 0..rounds {
        let user = admin
            .add_user(account.id, format!("u{round}@race.test"), vec![Role::Basic])
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::watch::channel(None);
        let issue = {
            let admin = admin.clone();
            tokio::spawn(async move {
                let token = admin
                    .issue_personal_token(account.id, user.id, NewToken::new("race", Role::Basic))
                    .await;
                if let Ok(token) = &token {
                    let _ = tx.send(Some(token.clone()));
                }
                token
            })
        };
        // Issuing hashes the secret first; a removal started 0-2 ms later lands anywhere from
        // before the issue's transaction to after it.
        let delay = Duration::from_micros((round % 40) as u64 * 50);
        let remove = {
            let admin = admin.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                admin.remove_user(account.id, user.id).await
            })
        };
        let user_of = {
            let auth = auth.clone();
            tokio::spawn(async move {
                // Fill the cache with the token while the removal may still be running.
                if rx.changed().await.is_ok() {
                    let token = rx.borrow().clone().expect("sent");
                    for _ in 0..20 {
                        let _ = common::authenticate(
                            &auth,
                            &token.client_id,
                            token.secret_key.expose_secret(),
                        )
                        .await;
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        let token = issue.await.unwrap();
        let removed = remove.await.unwrap().expect("remove_user");
        user_of.await.unwrap();
        let Ok(token) = token else {
            continue; // the removal came first: nothing was issued
        };
        issued += 1;
        assert!(
            removed.contains(&token.client_id),
            "round {round}: the removal did not report the token it deleted"
        );
        let after =
            common::authenticate(&auth, &token.client_id, token.secret_key.expose_secret()).await;
        assert!(
            matches!(after, Err(AuthError::InvalidCredentials)),
            "round {round}: a token outlived its user's removal: {after:?}"
        );
    }
    eprintln!("{issued} of {rounds} rounds issued the token before the removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_token_issued_while_its_user_is_removed_never_outlives_the_removal() {
    let Some(store) = postgres().await else {
        return;
    };
    issue_racing_removal(Arc::new(store), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_token_issued_while_its_user_is_removed_never_outlives_the_removal() {
    let (_dir, _, store) = sqlite_file().await;
    issue_racing_removal(Arc::new(store), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_wait_for_each_other_instead_of_failing() {
    let (_dir, _, store) = sqlite_file().await;
    let admin = fast_admin(Arc::new(store));
    let account = admin.create_account("Writers").await.unwrap();
    let user = admin
        .add_user(account.id, "writer@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    // Issuing a personal token reads the user, then writes: the transaction SQLite refused
    // to upgrade when another writer held the lock.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while tokio::time::Instant::now() < until {
                    admin
                        .issue_personal_token(
                            account.id,
                            user.id,
                            NewToken::new(format!("w{w}-{done}"), Role::Basic),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}, write {done}: {e:?}"));
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for writer in writers {
        total += writer.await.unwrap();
    }
    let listed = admin
        .list_tokens(account.id, finout_auth::store::TokenFilter::All)
        .await
        .unwrap();
    assert_eq!(listed.len(), total);
    assert!(total >= 16, "every writer wrote: {total}");
}

/// A personal token whose user row was moved to another account (a tampered database) is
/// not found: the lookup joins the user on the token's account.
async fn moved_user_hides_the_token<DB>(store: Arc<dyn TokenAdminStore>, pool: &sqlx::Pool<DB>)
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let admin = fast_admin(store.clone());
    let home = admin.create_account("Home").await.unwrap();
    let elsewhere = admin.create_account("Elsewhere").await.unwrap();
    let user = admin
        .add_user(home.id, "moved@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let token = admin
        .issue_personal_token(home.id, user.id, NewToken::new("t", Role::Admin))
        .await
        .unwrap();
    assert!(store.find_token(&token.client_id).await.unwrap().is_some());
    sqlx::query("UPDATE finout_auth_users SET account_id = $1 WHERE id = $2")
        .bind(elsewhere.id.to_string())
        .bind(user.id.to_string())
        .execute(pool)
        .await
        .unwrap();
    assert!(store.find_token(&token.client_id).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_a_token_whose_user_moved_to_another_account_is_not_found() {
    let (_dir, _, store) = sqlite_file().await;
    let pool = store.pool().clone();
    moved_user_hides_the_token(Arc::new(store), &pool).await;
}

#[tokio::test]
async fn postgres_a_token_whose_user_moved_to_another_account_is_not_found() {
    let Some(store) = postgres().await else {
        return;
    };
    let pool = store.pool().clone();
    moved_user_hides_the_token(Arc::new(store), &pool).await;
}
