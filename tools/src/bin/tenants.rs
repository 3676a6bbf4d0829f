//! Tenants harness: what one tenant turned attacker can take from the others, with real
//! argon2 (the default parameters) in a release build. Two phases, in process (the
//! authenticator itself, no HTTP in between, so that only the verification line is
//! measured):
//!
//! 1. **Fairness.** One account (a Basic user's 100 personal tokens) pumps distinct wrong
//!    secrets for its own ids from 200 tasks, as fast as answers come, for several failure
//!    windows; meanwhile another account uses tokens nobody used yet, one after another
//!    (each one argon2 run). Counts, per first use of the other account: the outcome, its
//!    latency, and how many of the pumping account's verifications started between its
//!    arrival and its own (read from the order verifications start in). Per window: how many
//!    pumped ids reached `too_many_attempts`.
//! 2. **Oracle.** The pumping account keeps the line full and 200 tasks flood invented ids;
//!    probes alternate a wrong secret for a real token of an idle account and an unknown id.
//!    Prints p10/p50/p90 of each kind's refusal latency and their ratios.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin tenants
//! # knobs: PUMPED_IDS=100 TASKS_PER_ID=2 FAILURES=20 FAILURE_WINDOW_MS=15000 WINDOWS=3 FIRST_USES=10
//! #        PROBES=200 PROBE_TASKS=10 FLOOD_TASKS=200 THREADS=1
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use finout_auth::{
    AccountId, Authenticator, ClientId, Credentials, ErrorCode, IssuedToken, NewToken, Role,
    TokenAdmin,
    crypto::SecretHasher,
    model::SecretHash,
    store::{MemoryTokenStore, TokenLimits},
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Setup {
    auth: Authenticator,
    started: Arc<Mutex<Vec<SecretHash>>>,
    account_of: HashMap<String, AccountId>,
    pumper: AccountId,
    pumped: Vec<IssuedToken>,
    others: Vec<IssuedToken>,
}

/// `failures`: the failure throttle's limit per window (`None`: off, so that a pump keeps
/// argon2 saturated for as long as it runs).
async fn setup(
    pumped_ids: usize,
    others: usize,
    failures: Option<(u32, Duration)>,
    threads: usize,
) -> Setup {
    let started = Arc::new(Mutex::new(Vec::new()));
    let hasher = SecretHasher::default().observing_verifications_for_tests({
        let started = started.clone();
        move |hash| started.lock().unwrap().push(hash.clone())
    });
    let store = Arc::new(MemoryTokenStore::new());
    let builder = Authenticator::builder(store.clone())
        .hasher(hasher.clone())
        .max_concurrent_verifications(threads);
    let auth = match failures {
        Some((limit, window)) => builder.failure_limit(limit, window),
        None => builder.no_failure_limit(),
    }
    .build();
    let admin = TokenAdmin::new(store)
        .with_hasher(hasher)
        .with_issuance_pool(2, 10_000, Duration::from_secs(600))
        .with_token_limits(TokenLimits::unlimited())
        .with_authenticator(auth.clone());
    let pumper = admin.create_account("Pumper").await.unwrap();
    let user = admin
        .add_user(pumper.id, "basic@pumper.test", vec![Role::Basic])
        .await
        .unwrap();
    let mut pumped = Vec::new();
    for i in 0..pumped_ids {
        let new = NewToken::new(format!("pump-{i}"), Role::Basic);
        pumped.push(
            admin
                .issue_personal_token(pumper.id, user.id, new)
                .await
                .unwrap(),
        );
    }
    let other = admin.create_account("Other").await.unwrap();
    let mut other_tokens = Vec::new();
    for i in 0..others {
        let new = NewToken::new(format!("first-use-{i}"), Role::ReadOnly);
        other_tokens.push(admin.issue_api_token(other.id, None, new).await.unwrap());
    }
    let mut account_of = HashMap::new();
    for (tokens, account) in [(&pumped, pumper.id), (&other_tokens, other.id)] {
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
    started.lock().unwrap().clear();
    Setup {
        auth,
        started,
        account_of,
        pumper: pumper.id,
        pumped,
        others: other_tokens,
    }
}

async fn attempt(auth: &Authenticator, id: &ClientId, secret: &str) -> Result<(), ErrorCode> {
    let credentials = Credentials::new(id.as_str(), secret).unwrap();
    auth.authenticate(credentials)
        .await
        .map(|_| ())
        .map_err(|e| e.code())
}

/// Answers by code, counted.
type Codes = Arc<Mutex<BTreeMap<&'static str, u64>>>;

fn count(codes: &Codes, outcome: Result<(), ErrorCode>) {
    let code = outcome.err().map_or("ok", |c| c.as_str());
    *codes.lock().unwrap().entry(code).or_default() += 1;
}

/// Latencies measured by several tasks.
type Latencies = Arc<Mutex<Vec<Duration>>>;

/// (window, pumped id index) pairs: which ids were throttled in which window.
type Throttled = Arc<Mutex<BTreeSet<(u64, usize)>>>;

/// The pumping account: distinct wrong secrets for its own ids from `tasks_per_id` tasks
/// each; records the window each id was throttled in.
fn start_pump(
    s: &Setup,
    tasks_per_id: usize,
    window: Duration,
    stop: &Arc<AtomicBool>,
    codes: &Codes,
) -> (Vec<tokio::task::JoinHandle<()>>, Throttled) {
    let throttled = Arc::new(Mutex::new(BTreeSet::new()));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for (index, token) in s.pumped.iter().enumerate() {
        for task in 0..tasks_per_id {
            let (auth, id) = (s.auth.clone(), token.client_id.clone());
            let (stop, codes, throttled) = (stop.clone(), codes.clone(), throttled.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let outcome = attempt(&auth, &id, &format!("guess-{task}-{n}")).await;
                    count(&codes, outcome);
                    if outcome == Err(ErrorCode::TooManyAttempts) {
                        let in_window =
                            began.elapsed().as_millis() as u64 / window.as_millis() as u64;
                        throttled.lock().unwrap().insert((in_window, index));
                        // Answered at once, and throttled for the rest of the window.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
    }
    (tasks, throttled)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn fairness() {
    let pumped_ids = env("PUMPED_IDS", 100) as usize;
    let tasks_per_id = env("TASKS_PER_ID", 2) as usize;
    let failures = env("FAILURES", 20) as u32;
    let window = Duration::from_millis(env("FAILURE_WINDOW_MS", 15_000));
    let windows = env("WINDOWS", 3);
    let first_uses = env("FIRST_USES", 10) as usize;
    let threads = env("THREADS", 1) as usize;
    let others = first_uses * windows as usize;
    let s = setup(pumped_ids, others, Some((failures, window)), threads).await;
    let stop = Arc::new(AtomicBool::new(false));
    let codes: Codes = Arc::default();
    let began = Instant::now();
    let (pump, throttled) = start_pump(&s, tasks_per_id, window, &stop, &codes);

    let mut rows = Vec::new();
    // Spread over the windows, the last use at the end of the last one.
    let spacing = window * windows as u32 / s.others.len().max(1) as u32;
    for token in &s.others {
        tokio::time::sleep(spacing).await;
        let before = s.started.lock().unwrap().len();
        let sent = Instant::now();
        let outcome = attempt(&s.auth, &token.client_id, token.secret_key.expose_secret()).await;
        let took = sent.elapsed();
        let ahead = s.started.lock().unwrap()[before..]
            .iter()
            .position(|h| s.account_of[h.as_phc()] != s.pumper);
        rows.push((outcome, took, ahead));
    }
    let elapsed = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in pump {
        task.await.unwrap();
    }

    let ok = rows.iter().filter(|r| r.0.is_ok()).count();
    let busy = rows
        .iter()
        .filter(|r| r.0 == Err(ErrorCode::AuthBusy))
        .count();
    let mut latencies: Vec<Duration> = rows.iter().map(|r| r.1).collect();
    latencies.sort();
    let ahead: Vec<usize> = rows.iter().filter_map(|r| r.2).collect();
    let runs = s.started.lock().unwrap().clone();
    let pumped_runs = runs
        .iter()
        .filter(|h| s.account_of[h.as_phc()] == s.pumper)
        .count();
    println!(
        "## Fairness: one account pumps its own {pumped_ids} ids from {} tasks; another uses new tokens",
        pumped_ids * tasks_per_id
    );
    println!(
        "\n{:.1} s, {} failure windows of {} ms ({failures} failures each), {threads} verification thread(s), argon2 m=19456 t=2 p=1\n",
        elapsed.as_secs_f64(),
        elapsed.as_millis() / window.as_millis(),
        window.as_millis()
    );
    println!(
        "| other account's first uses | ok | auth_busy | latency p50 / p99 / max (ms) | pump jobs started between arrival and own start (max, mean) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| {} | {ok} | {busy} | {:.1} / {:.1} / {:.1} | {}, {:.2} |",
        rows.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        pct(&latencies, 1.0),
        ahead.iter().max().copied().unwrap_or(0),
        ahead.iter().sum::<usize>() as f64 / ahead.len().max(1) as f64,
    );
    println!(
        "\nargon2 runs: {} in all, {pumped_runs} for the pumping account ({:.1}/s); its answers: {:?}",
        runs.len(),
        pumped_runs as f64 / elapsed.as_secs_f64(),
        codes.lock().unwrap()
    );
    let throttled = throttled.lock().unwrap();
    for w in 0..(elapsed.as_millis() / window.as_millis()) as u64 {
        let ids = throttled.iter().filter(|(x, _)| *x == w).count();
        println!("window {w}: {ids} of {pumped_ids} pumped ids reached too_many_attempts");
    }
}

async fn oracle() {
    let probes = env("PROBES", 200) as usize;
    let probe_tasks = env("PROBE_TASKS", 10) as usize;
    let flood_tasks = env("FLOOD_TASKS", 200) as usize;
    let threads = env("THREADS", 1) as usize;
    let window = Duration::from_secs(3600);
    // No failure throttle: the pump keeps argon2 saturated for the whole measurement.
    let s = setup(env("PUMPED_IDS", 100) as usize, probe_tasks, None, threads).await;
    let stop = Arc::new(AtomicBool::new(false));
    let codes: Codes = Arc::default();
    let (mut load, _) = start_pump(&s, env("TASKS_PER_ID", 2) as usize, window, &stop, &codes);
    let flood_codes: Codes = Arc::default();
    for _ in 0..flood_tasks {
        let (auth, stop, codes) = (s.auth.clone(), stop.clone(), flood_codes.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = ClientId::from(uuid::Uuid::new_v4().to_string().as_str());
                count(&codes, attempt(&auth, &id, "invented").await);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (runs_before, measured) = (s.started.lock().unwrap().len(), Instant::now());
    let (real, unknown): (Latencies, Latencies) = Default::default();
    let probe_codes: Codes = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut probing = Vec::new();
    for token in s.others.clone() {
        let (auth, real, unknown, codes, next) = (
            s.auth.clone(),
            real.clone(),
            unknown.clone(),
            probe_codes.clone(),
            next.clone(),
        );
        probing.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= probes {
                    break;
                }
                // Alternate: a wrong secret for the real token, then an unknown id.
                let (id, into) = if n % 2 == 0 {
                    (token.client_id.clone(), &real)
                } else {
                    (
                        ClientId::from(format!("unknown-{n}-{}", uuid::Uuid::new_v4()).as_str()),
                        &unknown,
                    )
                };
                let sent = Instant::now();
                let outcome = attempt(&auth, &id, &format!("wrong-{n}")).await;
                into.lock().unwrap().push(sent.elapsed());
                count(&codes, outcome);
            }
        }));
    }
    for task in probing {
        task.await.unwrap();
    }
    let runs = s.started.lock().unwrap().len() - runs_before;
    let rate = runs as f64 / measured.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (mut real, mut unknown) = (
        real.lock().unwrap().clone(),
        unknown.lock().unwrap().clone(),
    );
    real.sort();
    unknown.sort();
    println!(
        "\n## Oracle: refusal latency under load (the pumping account keeps argon2 busy; {flood_tasks} tasks flood invented ids)\n"
    );
    println!("| probe | n | p10 (ms) | p50 (ms) | p90 (ms) |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, l) in [
        ("wrong secret, real id of an idle account", &real),
        ("unknown id", &unknown),
    ] {
        println!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} |",
            l.len(),
            pct(l, 0.1),
            pct(l, 0.5),
            pct(l, 0.9)
        );
    }
    println!(
        "| ratio real / unknown | | {:.4} | {:.4} | {:.4} |",
        pct(&real, 0.1) / pct(&unknown, 0.1),
        pct(&real, 0.5) / pct(&unknown, 0.5),
        pct(&real, 0.9) / pct(&unknown, 0.9)
    );
    println!(
        "\nprobe answers: {:?}; flood answers: {:?}; pump answers: {:?}; argon2 runs while probing: {runs} ({rate:.1}/s)",
        probe_codes.lock().unwrap(),
        flood_codes.lock().unwrap(),
        codes.lock().unwrap(),
    );
}

#[tokio::main]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("fairness") => fairness().await,
        Some("oracle") => oracle().await,
        _ => {
            fairness().await;
            oracle().await;
        }
    }
}
