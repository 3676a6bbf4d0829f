//! Fair admission, as a paying tenant turned attacker would test it: one account pumping
//! wrong secrets for its own client ids at full speed, across several failure windows, while
//! another account's tokens are used for the first time (each one argon2 run). Verifications
//! hold their thread for a fixed time without using the CPU (a sleeping test hasher), and the
//! failure windows move on an injected clock, so the counts below hold on a loaded machine.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use finout_auth::{
    AccountId, Authenticator, ClientId, Credentials, ErrorCode, IssuedToken, NewToken, Role,
    TokenAdmin,
    clock::ManualClock,
    crypto::SecretHasher,
    model::SecretHash,
    store::{MemoryTokenStore, TokenLimits},
};
use time::macros::datetime;

/// What one verification holds its thread for.
const COST: Duration = Duration::from_millis(50);
/// The refusal deadline: room for the victim's wait (one job running, one of the pumping
/// account's, its own) with a margin.
const DEADLINE: Duration = Duration::from_millis(500);
/// Failures per window, per client id.
const FAILURES: u32 = 5;
const WINDOW: time::Duration = time::Duration::seconds(60);
/// Client ids of the pumping account, and pumping tasks per id.
const PUMPED_IDS: usize = 100;
const TASKS_PER_ID: usize = 2;
/// The stated bound: of the pumping account's verifications, at most this many start after
/// a victim's request arrives and before the victim's own starts. With one thread: the one
/// being taken from the line as the victim arrives, and one more for the round robin.
const PUMP_JOBS_AHEAD: usize = 2;

struct Tenants {
    auth: Authenticator,
    clock: ManualClock,
    /// The stored hash of every verification, in the order they started.
    started: Arc<Mutex<Vec<SecretHash>>>,
    /// Which account each stored hash is a token of.
    account_of: HashMap<String, AccountId>,
    pumper: AccountId,
    pumped: Vec<IssuedToken>,
    victims: Vec<IssuedToken>,
}

async fn tenants(
    configure: impl FnOnce(finout_auth::AuthenticatorBuilder) -> finout_auth::AuthenticatorBuilder,
) -> Tenants {
    let started = Arc::new(Mutex::new(Vec::new()));
    let hasher = SecretHasher::sleeping_for_tests(COST).observing_verifications_for_tests({
        let started = started.clone();
        move |hash| started.lock().unwrap().push(hash.clone())
    });
    let store = Arc::new(MemoryTokenStore::new());
    let clock = ManualClock::new(datetime!(2026-06-01 0:00 UTC));
    let auth = configure(
        Authenticator::builder(store.clone())
            .hasher(hasher)
            .clock(clock.clone())
            .max_concurrent_verifications(1)
            .max_waiting_verifications(64)
            .verification_wait(DEADLINE)
            .failure_limit(FAILURES, Duration::from_secs(60))
            .low_priority_verification(false),
    )
    .build();
    let admin = TokenAdmin::new(store.clone())
        .with_hasher(SecretHasher::insecure_for_tests_only())
        .with_token_limits(TokenLimits::unlimited())
        .with_authenticator(auth.clone());
    // The pumping tenant: a Basic user and its personal tokens.
    let pumper = admin.create_account("Pumper").await.unwrap();
    let user = admin
        .add_user(pumper.id, "basic@pumper.test", vec![Role::Basic])
        .await
        .unwrap();
    let mut pumped = Vec::new();
    for i in 0..PUMPED_IDS {
        let new = NewToken::new(format!("pump-{i}"), Role::Basic);
        pumped.push(
            admin
                .issue_personal_token(pumper.id, user.id, new)
                .await
                .unwrap(),
        );
    }
    // The other tenant: API tokens nobody used yet.
    let victim = admin.create_account("Victim").await.unwrap();
    let mut victims = Vec::new();
    for i in 0..15 {
        let new = NewToken::new(format!("first-use-{i}"), Role::ReadOnly);
        victims.push(admin.issue_api_token(victim.id, None, new).await.unwrap());
    }
    let mut account_of = HashMap::new();
    for (tokens, account) in [(&pumped, pumper.id), (&victims, victim.id)] {
        for token in tokens {
            let found = admin
                .store()
                .find_token(&token.client_id)
                .await
                .unwrap()
                .unwrap();
            account_of.insert(found.record.secret_hash.as_phc().to_owned(), account);
        }
    }
    Tenants {
        auth,
        clock,
        started,
        account_of,
        pumper: pumper.id,
        pumped,
        victims,
    }
}

async fn attempt(auth: &Authenticator, id: &ClientId, secret: &str) -> Result<(), ErrorCode> {
    let credentials = Credentials::new(id.as_str(), secret).unwrap();
    auth.authenticate(credentials)
        .await
        .map(|_| ())
        .map_err(|e| e.code())
}

/// Wrong secrets for `id`, each new, as fast as answers come; records the window (phase)
/// in which the id was throttled.
async fn pump(
    auth: Authenticator,
    id: ClientId,
    index: usize,
    phase: Arc<AtomicUsize>,
    throttled: Arc<Mutex<BTreeSet<(usize, usize)>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match attempt(&auth, &id, &format!("guess-{index}-{n}")).await {
            Err(ErrorCode::TooManyAttempts) => {
                throttled
                    .lock()
                    .unwrap()
                    .insert((phase.load(Ordering::Relaxed), index));
                // Throttled until the window moves: no argon2 to pump meanwhile.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(ErrorCode::InvalidCredentials | ErrorCode::AuthBusy) => {}
            other => panic!("the pump got {other:?}"),
        }
    }
}

/// The pumping tenant at work: `tasks_per_id` pumping tasks on each of its first `ids` ids.
struct Pump {
    phase: Arc<AtomicUsize>,
    throttled: Arc<Mutex<BTreeSet<(usize, usize)>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pump {
    fn start(t: &Tenants, ids: usize, tasks_per_id: usize) -> Pump {
        let (phase, stop) = (Arc::<AtomicUsize>::default(), Arc::<AtomicBool>::default());
        let throttled = Arc::<Mutex<BTreeSet<_>>>::default();
        let mut tasks = Vec::new();
        for (index, token) in t.pumped.iter().take(ids).enumerate() {
            for _ in 0..tasks_per_id {
                tasks.push(tokio::spawn(pump(
                    t.auth.clone(),
                    token.client_id.clone(),
                    index,
                    phase.clone(),
                    throttled.clone(),
                    stop.clone(),
                )));
            }
        }
        Pump {
            phase,
            throttled,
            stop,
            tasks,
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_pumping_its_own_ids_never_takes_another_tenants_first_verifications() {
    let t = tenants(|b| b).await;
    let pump = Pump::start(&t, PUMPED_IDS, TASKS_PER_ID);
    let (phase, throttled) = (&pump.phase, &pump.throttled);
    let mut victims = t.victims.iter();
    let mut pump_jobs_ahead = Vec::new();
    for window in 0..3 {
        phase.store(window, Ordering::Relaxed);
        // Let the pump fill the line again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for victim in victims.by_ref().take(5) {
            let before = t.started.lock().unwrap().len();
            let outcome = attempt(
                &t.auth,
                &victim.client_id,
                victim.secret_key.expose_secret(),
            )
            .await;
            assert_eq!(
                outcome,
                Ok(()),
                "a first verification of the other tenant in window {window}"
            );
            let own = t.started.lock().unwrap()[before..]
                .iter()
                .position(|hash| t.account_of[hash.as_phc()] != t.pumper)
                .expect("the victim's verification ran");
            pump_jobs_ahead.push(own);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Every pumped id reaches `too_many_attempts` in this window.
        let waited = Instant::now();
        while throttled
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| *w == window)
            .count()
            < PUMPED_IDS
        {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "window {window}: only {} of {PUMPED_IDS} pumped ids throttled",
                throttled
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(w, _)| *w == window)
                    .count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The next failure window.
        t.clock.advance(WINDOW);
    }
    pump.stop().await;
    assert_eq!(pump_jobs_ahead.len(), 15);
    assert!(
        pump_jobs_ahead.iter().all(|n| *n <= PUMP_JOBS_AHEAD),
        "the pumping account's verifications that started between a victim's arrival and its own: {pump_jobs_ahead:?}"
    );
    // The pump really used the line: far more of its verifications ran than the victims'.
    let started = t.started.lock().unwrap();
    let pumped_runs = started
        .iter()
        .filter(|h| t.account_of[h.as_phc()] == t.pumper)
        .count();
    assert!(pumped_runs >= 100, "{pumped_runs} pumped verifications ran");
    // A check refused for want of capacity took its place in the id's failure window: the
    // ids reached `too_many_attempts` with far fewer argon2 runs than the windows' places
    // (100 ids x 5 failures x 3 windows), which wrong secrets alone would have needed.
    let places = 3 * PUMPED_IDS * FAILURES as usize;
    assert!(
        pumped_runs < places / 2,
        "{pumped_runs} pumped verifications ran for {places} places"
    );
    let m = t.auth.metrics();
    assert!(
        m.rejections_of(ErrorCode::AuthBusy) > 0,
        "the pump saturated the line: {m:?}"
    );
}

/// While one tenant keeps the verification line full and invented ids flood in, a wrong
/// secret for a real token of an idle account and an unknown id are answered alike: both
/// `invalid_credentials`, both at the deadline (never before it), though only the real one
/// ran argon2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_real_ids_refusal_and_an_unknown_ids_look_the_same() {
    let t = tenants(|b| b.no_failure_limit()).await;
    let pump = Pump::start(&t, 20, 1);
    let stop = pump.stop.clone();
    let mut load = Vec::new();
    for _ in 0..50 {
        let (auth, stop) = (t.auth.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = ClientId::from(uuid::Uuid::new_v4().to_string().as_str());
                assert_eq!(
                    attempt(&auth, &id, "invented").await,
                    Err(ErrorCode::InvalidCredentials)
                );
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs_before = t.started.lock().unwrap().len();
    let real = &t.victims[0].client_id;
    for probe in 0..6 {
        for id in [
            real.clone(),
            ClientId::from(format!("unknown-{probe}").as_str()),
        ] {
            let sent = Instant::now();
            let outcome = attempt(&t.auth, &id, &format!("wrong-{probe}")).await;
            let took = sent.elapsed();
            assert_eq!(outcome, Err(ErrorCode::InvalidCredentials), "{id:?}");
            assert!(
                took >= DEADLINE && took < DEADLINE * 2,
                "{id:?} answered after {took:?}"
            );
        }
    }
    pump.stop().await;
    for task in load {
        task.await.unwrap();
    }
    assert!(
        t.started.lock().unwrap().len() > runs_before + 6,
        "the line was busy, and the real probes ran argon2"
    );
}
