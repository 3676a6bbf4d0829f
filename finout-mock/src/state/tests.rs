//! Writes are locked per account (one account's large writes never queue another's, and the
//! locks of accounts no longer writing are dropped), and rows that cannot be read are set
//! aside when the mock starts.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use finout_auth::AccountId;
use serde_json::{Value, json};
use sqlx::SqlitePool;

use super::{MockDatabase, State, tags::StoredTag};

/// Far longer than any write here takes: reaching it means the write was queued.
const PATIENCE: Duration = Duration::from_secs(60);

async fn sqlite(dir: &tempfile::TempDir) -> SqlitePool {
    let path = dir.path().join("mock.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
    SqlitePool::connect_with(options).await.unwrap()
}

fn tag(name: &str, blob_bytes: usize) -> StoredTag {
    let Value::Object(fields) = json!({"name": name, "rules": [], "blob": "x".repeat(blob_bytes)})
    else {
        unreachable!()
    };
    StoredTag::new(fields, "test", time::OffsetDateTime::now_utc(), None)
}

/// Write tags of `blob_bytes` to `account` in a loop (each write a new live version, so the
/// tag grows towards the account's 16 MiB) until `stop`.
fn write_in_a_loop(
    state: &Arc<State>,
    account: AccountId,
    id: String,
    stop: &Arc<AtomicBool>,
    writes: &Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let (state, stop, writes) = (Arc::clone(state), Arc::clone(stop), Arc::clone(writes));
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Value::Object(fields) = json!({"name": "big", "blob": "y".repeat(1 << 20)}) else {
                unreachable!()
            };
            let now = time::OffsetDateTime::now_utc();
            state
                .update_tag(account, &id, |t| {
                    t.save(fields, "a", now, true, None);
                    Ok(())
                })
                .await
                .unwrap();
            writes.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_writes_go_on_while_one_account_holds_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(
        State::load(MockDatabase::Sqlite(sqlite(&dir).await))
            .await
            .unwrap(),
    );
    let (a, b) = (AccountId::new_v4(), AccountId::new_v4());
    let big = state.add_tag(a, tag("big", 1 << 20)).await.unwrap();
    let (stop, writes) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writers: Vec<_> = (0..2)
        .map(|_| write_in_a_loop(&state, a, big.id.clone(), &stop, &writes))
        .collect();

    // A writes MiBs in a loop; B's small creates are timed (printed, not asserted: the
    // machine is shared).
    tokio::time::timeout(PATIENCE, async {
        while writes.load(Ordering::Relaxed) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let mut took = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        tokio::time::timeout(PATIENCE, state.add_tag(b, tag(&format!("b{i}"), 16)))
            .await
            .expect("B's create was queued behind A's writes")
            .unwrap();
        took.push(started.elapsed());
    }
    took.sort();
    eprintln!(
        "B's creates under A's writes ({} so far): median {:?}, max {:?}",
        writes.load(Ordering::Relaxed),
        took[took.len() / 2],
        took[took.len() - 1]
    );

    // The test now holds A's lock: A's writers and one more wait; B's creates do not.
    let held = state.locks.lock(a).await;
    let now = time::OffsetDateTime::now_utc();
    let pending = {
        let (state, id) = (Arc::clone(&state), big.id.clone());
        tokio::spawn(async move {
            state
                .update_tag(a, &id, |t| {
                    t.fields.insert("name".into(), json!("pending"));
                    t.updated_at = now;
                    Ok(())
                })
                .await
        })
    };
    for i in 0..10 {
        tokio::time::timeout(PATIENCE, state.add_tag(b, tag(&format!("held{i}"), 16)))
            .await
            .expect("B's create waited for A's lock")
            .unwrap();
    }
    assert!(!pending.is_finished(), "A's write went on under A's lock");
    assert_eq!(state.tags(b, |t| t.values().count()), 20);

    stop.store(true, Ordering::Relaxed);
    drop(held);
    tokio::time::timeout(PATIENCE, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for writer in writers {
        tokio::time::timeout(PATIENCE, writer)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        state.locks.len(),
        0,
        "no lock is kept for an account not writing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_stuck_in_postgres_holds_only_its_own_accounts_writes() {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!("skipped: set FINOUT_AUTH_TEST_DATABASE_URL to a PostgreSQL URL");
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let state = Arc::new(
        State::load(MockDatabase::Postgres(pool.clone()))
            .await
            .unwrap(),
    );
    let (a, b) = (AccountId::new_v4(), AccountId::new_v4());
    let id = state.add_tag(a, tag("a", 16)).await.unwrap().id.clone();
    // A's row locked by another transaction: A's next save waits in the database.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM finout_mock_documents WHERE account_id = $1 AND id = $2 FOR UPDATE")
        .bind(a.to_string())
        .bind(&id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let stuck = {
        let (state, id) = (Arc::clone(&state), id.clone());
        tokio::spawn(async move { state.update_tag(a, &id, |_| Ok(())).await })
    };
    // Until A's writer holds A's lock (it then waits on the row until the end).
    tokio::time::timeout(PATIENCE, async {
        while !state.locks.is_held(a) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    for i in 0..5 {
        tokio::time::timeout(PATIENCE, state.add_tag(b, tag(&format!("b{i}"), 16)))
            .await
            .expect("B's create waited for A's stuck save")
            .unwrap();
    }
    assert!(!stuck.is_finished());
    blocker.rollback().await.unwrap();
    tokio::time::timeout(PATIENCE, stuck)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for account in [a, b] {
        sqlx::query("DELETE FROM finout_mock_documents WHERE account_id = $1")
            .bind(account.to_string())
            .execute(&pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_no_lock_behind() {
    let state = Arc::new(State::default());
    let a = AccountId::new_v4();
    let held = state.locks.lock(a).await;
    let waiter = {
        let state = Arc::clone(&state);
        tokio::spawn(async move { state.add_tag(a, tag("t", 1)).await })
    };
    while state.locks.users(a) < 2 {
        tokio::task::yield_now().await;
    }
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(state.locks.users(a), 1);
    drop(held);
    assert_eq!(state.locks.len(), 0);
    assert_eq!(state.tags(a, |t| t.values().count()), 0);
}

#[tokio::test]
async fn rows_that_cannot_be_read_are_set_aside_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite(&dir).await;
    let state = Arc::new(
        State::load(MockDatabase::Sqlite(pool.clone()))
            .await
            .unwrap(),
    );
    let good = AccountId::new_v4();
    state.add_tag(good, tag("kept", 8)).await.unwrap();
    let other = AccountId::new_v4().to_string();
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let rows = [
        (
            &*other,
            "virtual_tag",
            "syntax",
            "{\"id\": \"secret-ish".to_owned(),
        ),
        (&other, "virtual_tag", "shape", json!({"id": 7}).to_string()),
        (&other, "virtual_tag", "deep", deep),
        (
            "not-a-uuid",
            "endpoint",
            "e",
            json!({"id": "e"}).to_string(),
        ),
        (&other, "endpoint", "array", "[1]".to_owned()),
    ];
    for (account, kind, id, body) in rows {
        sqlx::query("INSERT INTO finout_mock_documents VALUES (?1, ?2, ?3, ?4)")
            .bind(account)
            .bind(kind)
            .bind(id)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
    }
    // A body that is not even text.
    sqlx::query("INSERT INTO finout_mock_documents VALUES (?1, 'virtual_tag', 'blob', ?2)")
        .bind(&other)
        .bind(vec![0xffu8, 0xfe])
        .execute(&pool)
        .await
        .unwrap();

    let state = State::load(MockDatabase::Sqlite(pool)).await.unwrap();
    assert_eq!(state.rows_set_aside(), 6);
    assert_eq!(
        state.tags(good, |t| t.values().next().unwrap().name().to_owned()),
        "kept"
    );
}
