//! The cost of one cold lookup (`TokenStore::find_token`) per store, to compare with the
//! memory store in the same run.
//!
//! ```sh
//! FINOUT_AUTH_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --bench stores --features sqlite,postgres
//! ```
//!
//! PostgreSQL is measured only when the variable is set.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use finout_auth::{
    ClientId, NewToken, Role, TokenAdmin,
    crypto::SecretHasher,
    store::{MemoryTokenStore, PostgresTokenStore, SqliteTokenStore, TokenAdminStore},
};

async fn seeded(store: Arc<dyn TokenAdminStore>) -> ClientId {
    let admin = TokenAdmin::new(store).with_hasher(SecretHasher::with_params(8, 1, 1).unwrap());
    let account = admin.create_account("bench").await.unwrap();
    let user = admin
        .add_user(
            account.id,
            format!("{}@bench.test", account.id),
            vec![Role::Admin],
        )
        .await
        .unwrap();
    // A personal token: the lookup joins its user, the most a lookup does.
    admin
        .issue_personal_token(account.id, user.id, NewToken::new("bench", Role::Admin))
        .await
        .unwrap()
        .client_id
}

fn cold_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, Arc<dyn TokenAdminStore>)> = vec![
        ("memory", Arc::new(MemoryTokenStore::new())),
        (
            "sqlite",
            Arc::new(
                rt.block_on(SqliteTokenStore::connect(&format!(
                    "sqlite://{}",
                    dir.path().join("bench.db").display()
                )))
                .unwrap(),
            ),
        ),
    ];
    match std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") {
        Ok(url) => stores.push((
            "postgres",
            Arc::new(rt.block_on(PostgresTokenStore::connect(&url)).unwrap()),
        )),
        Err(_) => eprintln!("postgres skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set"),
    }
    let mut group = c.benchmark_group("cold_lookup");
    for (name, store) in stores {
        let id = rt.block_on(seeded(store.clone()));
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let found = store.find_token(&id).await.unwrap();
                assert!(found.is_some());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cold_lookup);
criterion_main!(benches);
