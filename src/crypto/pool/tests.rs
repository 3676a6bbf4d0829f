use std::sync::{
    Mutex,
    atomic::{AtomicUsize, Ordering::SeqCst},
    mpsc,
};

use super::*;
use crate::model::ClientId;

fn share(account: u128, client: &str) -> Share {
    Share {
        account: AccountId(uuid::Uuid::from_u128(account)),
        client: ClientId::from(client),
    }
}

fn admission(threads: usize, waiting: usize, wait: Duration) -> Arc<Admission> {
    Arc::new(Admission::new(
        "finout-auth-verify",
        threads,
        waiting,
        wait,
        false,
    ))
}

/// Occupy the only thread of `admission` (for account 0) until the returned sender is
/// dropped.
async fn occupy(
    admission: &Arc<Admission>,
) -> (mpsc::Sender<()>, tokio::task::JoinHandle<Result<(), Busy>>) {
    let (release, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let running = tokio::spawn({
        let admission = admission.clone();
        async move {
            admission
                .run(share(0, "holder"), move || {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                })
                .await
        }
    });
    tokio::task::spawn_blocking(move || started.recv())
        .await
        .unwrap()
        .unwrap();
    (release, running)
}

/// Wait (at most 5 s) until `n` jobs are queued.
async fn queued(admission: &Admission, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while admission.pool.shared.lock().fair.queued() != n {
        assert!(std::time::Instant::now() < deadline, "never {n} queued");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn work_runs_on_a_verification_thread() {
    let admission = admission(1, 0, Duration::from_secs(1));
    let name = admission
        .run(share(1, "x"), || {
            std::thread::current().name().map(str::to_owned)
        })
        .await;
    assert_eq!(name, Ok(Some("finout-auth-verify-0".to_owned())));
}

#[tokio::test]
async fn a_full_line_is_busy_at_once() {
    let admission = admission(1, 0, Duration::from_secs(60));
    let (release, running) = occupy(&admission).await;
    let started = std::time::Instant::now();
    assert_eq!(admission.run(share(0, "holder"), || ()).await, Err(Busy));
    assert_eq!(admission.run(share(1, "x"), || ()).await, Err(Busy));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not after a wait"
    );
    assert_eq!(admission.new_account_done_within(), None);
    drop(release);
    assert_eq!(running.await.unwrap(), Ok(()));
    assert_eq!(
        admission.run(share(1, "x"), || 7).await,
        Ok(7),
        "free again"
    );
}

/// One account floods the line; another account's job then runs after at most one more of
/// the flood's, however many the flood queued, and takes a place from the flood when the
/// line is full.
#[tokio::test]
async fn a_flooding_account_runs_at_most_one_job_ahead_of_another_accounts() {
    let admission = admission(1, 7, Duration::from_secs(60));
    let (release, running) = occupy(&admission).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let job = |name: String| {
        let order = order.clone();
        move || order.lock().unwrap().push(name)
    };
    let flood: Vec<_> = (0..7)
        .map(|i| {
            let (admission, job) = (admission.clone(), job(format!("flood-{i}")));
            tokio::spawn(async move { admission.run(share(0, "pump"), job).await })
        })
        .collect();
    queued(&admission, 7).await;
    // Full (1 running + 7 queued): the newcomer displaces the flood's newest job.
    let newcomer = tokio::spawn({
        let (admission, job) = (admission.clone(), job("newcomer".into()));
        async move { admission.run(share(1, "first"), job).await }
    });
    let account = AccountId(uuid::Uuid::from_u128(1));
    while !admission.pool.shared.lock().fair.holds_places(&account) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    queued(&admission, 7).await;
    drop(release);
    assert_eq!(running.await.unwrap(), Ok(()));
    assert_eq!(newcomer.await.unwrap(), Ok(()));
    let mut outcomes = Vec::new();
    for job in flood {
        outcomes.push(job.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_err()).count(),
        1,
        "one displaced"
    );
    assert_eq!(outcomes.last(), Some(&Err(Busy)), "the newest");
    let order = order.lock().unwrap();
    let position = order.iter().position(|n| n == "newcomer").unwrap();
    assert!(position <= 1, "{order:?}");
}

#[tokio::test]
async fn waiting_longer_than_the_wait_is_busy_and_the_job_is_skipped() {
    let admission = admission(1, 1, Duration::from_millis(50));
    let (release, running) = occupy(&admission).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    assert_eq!(
        admission
            .run(share(1, "x"), move || counted.fetch_add(1, SeqCst))
            .await,
        Err(Busy),
        "no thread within 50 ms"
    );
    drop(release);
    assert_eq!(running.await.unwrap(), Ok(()));
    // The thread skips the abandoned job, which gives its place in line back.
    queued(&admission, 0).await;
    assert_eq!(admission.run(share(1, "x"), || ()).await, Ok(()));
    assert_eq!(ran.load(SeqCst), 0, "the abandoned job never ran");
}

#[tokio::test]
async fn no_more_run_at_once_than_the_threads() {
    let admission = admission(2, 14, Duration::from_secs(10));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..16)
        .map(|i| {
            let (admission, running, most) = (admission.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                admission
                    .run(share(i % 3, "x"), move || {
                        let now = running.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
            })
        })
        .collect();
    for job in jobs {
        assert_eq!(job.await.unwrap(), Ok(()));
    }
    assert_eq!(most.load(SeqCst), 2);
}

#[tokio::test]
async fn a_panicking_job_keeps_its_thread_and_frees_its_place() {
    let admission = admission(1, 0, Duration::from_millis(200));
    for _ in 0..3 {
        let panicked = admission
            .run(share(1, "x"), || -> u8 { panic!("argon2 blew up") })
            .await;
        assert_eq!(panicked, Err(Busy));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while admission.running() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "its place never came back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The only thread still serves.
    assert_eq!(admission.run(share(1, "x"), || 7).await, Ok(7));
}

#[tokio::test]
async fn a_new_accounts_job_is_estimated_from_the_line_and_the_run_time() {
    let admission = admission(1, 8, Duration::from_secs(60));
    // Measured: a few jobs of 20 ms bring the average up from its initial 15 ms.
    for _ in 0..24 {
        admission
            .run(share(1, "x"), || {
                std::thread::sleep(Duration::from_millis(20))
            })
            .await
            .unwrap();
    }
    let one = admission.new_account_done_within().unwrap();
    assert!(one >= Duration::from_millis(19), "{one:?}");
    let (release, running) = occupy(&admission).await;
    let queued_jobs: Vec<_> = [2, 3]
        .map(|account| {
            let admission = admission.clone();
            tokio::spawn(async move { admission.run(share(account, "x"), || ()).await })
        })
        .into_iter()
        .collect();
    queued(&admission, 2).await;
    // One running and two accounts queued: its own run is the fourth.
    let four = admission.new_account_done_within().unwrap();
    assert_eq!(four, one * 4);
    drop(release);
    assert_eq!(running.await.unwrap(), Ok(()));
    for job in queued_jobs {
        assert_eq!(job.await.unwrap(), Ok(()));
    }
}
