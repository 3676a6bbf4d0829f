//! The mock's state: [`Mock`], what every route reads (the token admin and authenticator,
//! the clock, the limits, what clients wrote, the V2 queries, the views), its builder
//! methods, and the limits it puts in front of the routes. The router (`lib.rs`) is the one
//! place that knows the routes; this module imports none.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use finout_auth::{
    AccountId, Authenticator, Principal, TokenAdmin,
    clock::{Clock, SystemClock},
    metrics::Metrics,
    middleware::{Quota, RateLimitHeaders, RateLimitLayer, TokenConcurrencyLimitLayer},
    model::DataAccess,
    shared::Shared,
};
use time::OffsetDateTime;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::state::MockDatabase;
use crate::{
    error::{Answer, MockError},
    fixtures::{self, View},
    limits::{DEFAULT_QUERY_DELAY, MAX_QUERY_DELAY},
    query, state,
};

/// A Finout-compatible mock API over a token store.
#[derive(Debug, Clone)]
pub struct Mock {
    pub(crate) inner: Arc<MockInner>,
}

#[derive(Debug, Clone)]
pub(crate) struct MockInner {
    pub(crate) admin: TokenAdmin,
    pub(crate) authenticator: Authenticator,
    latency: Duration,
    max_in_flight: usize,
    clock: Arc<dyn Clock>,
    /// How long a V2 cost-and-usage query takes to complete.
    pub(crate) query_delay: Duration,
    rate_limits: bool,
    /// Where the limits are shared with other replicas, if anywhere.
    shared: Option<Shared>,
    /// Virtual tags and endpoints, per account (in the database, if any).
    pub(crate) state: Arc<state::State>,
    /// V2 cost-and-usage queries, per account (in memory).
    pub(crate) queries: Arc<query::Queries>,
    /// Views replacing the fixtures, per account (from a seed).
    views: HashMap<AccountId, Vec<View>>,
    /// What `/metrics` answers.
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: crate::metrics::recorder::Prometheus,
}

impl Mock {
    /// A mock over `admin`'s store, authenticating with `authenticator` (register it with
    /// the admin, so revocations take effect at once). What clients write is kept in
    /// memory until [`database`](Self::database) says where to keep it.
    pub fn new(admin: TokenAdmin, authenticator: Authenticator) -> Self {
        Mock {
            inner: Arc::new(MockInner {
                admin,
                authenticator,
                latency: Duration::ZERO,
                max_in_flight: 5,
                clock: Arc::new(SystemClock),
                query_delay: DEFAULT_QUERY_DELAY,
                rate_limits: true,
                shared: None,
                state: Arc::default(),
                queries: Arc::default(),
                views: HashMap::new(),
                #[cfg(feature = "prometheus")]
                prometheus: crate::metrics::recorder::Prometheus::new(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut MockInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        f(&mut inner);
        Mock {
            inner: Arc::new(inner),
        }
    }

    /// Keep virtual tags, their metadata and endpoints in `db` (the mock's own table,
    /// created if needed), loading what it holds: they survive a restart (features `sqlite`,
    /// `postgres`).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub async fn database(self, db: MockDatabase) -> Result<Self, sqlx::Error> {
        let state = Arc::new(state::State::load(db).await?);
        Ok(self.with(|m| m.state = state))
    }

    /// Read the time from `clock`: V2 query completion, rate limits and timestamps (e.g. a
    /// [`ManualClock`](finout_auth::clock::ManualClock) in tests).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.with(|m| m.clock = Arc::new(clock))
    }

    /// How long a V2 cost-and-usage query stays `queued`/`running` before it completes
    /// (default [`DEFAULT_QUERY_DELAY`]; at most [`MAX_QUERY_DELAY`], which is as good as
    /// never).
    #[must_use]
    pub fn query_delay(self, delay: Duration) -> Self {
        self.with(|m| m.query_delay = delay.min(MAX_QUERY_DELAY))
    }

    /// Apply Finout's per-route V2 rate limits (the default) or not.
    #[must_use]
    pub fn rate_limits(self, on: bool) -> Self {
        self.with(|m| m.rate_limits = on)
    }

    /// Share the rate and in-flight limits with the other replicas through `shared` (give
    /// the authenticator the same, for its failure windows and verified secrets).
    #[must_use]
    pub fn shared(self, shared: Shared) -> Self {
        self.with(|m| m.shared = Some(shared))
    }

    /// The in-flight limit per token, shared if the mock is.
    pub(crate) fn in_flight_limit(&self) -> TokenConcurrencyLimitLayer {
        let layer = TokenConcurrencyLimitLayer::new(self.inner.max_in_flight)
            .metrics(self.metrics().clone());
        match &self.inner.shared {
            Some(shared) => layer.shared(shared.clone()),
            None => layer,
        }
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Delay every `/v1` and `/v2` response by `latency` (to test clients against a slow
    /// API).
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        self.with(|m| m.latency = latency)
    }

    /// Requests in flight per token on `/v1` (Finout allows 5).
    #[must_use]
    pub fn max_in_flight(self, n: usize) -> Self {
        self.with(|m| m.max_in_flight = n)
    }

    /// Answer `account`'s views with `views` instead of the fixtures.
    #[must_use]
    pub fn views(self, account: AccountId, views: Vec<View>) -> Self {
        self.with(|m| {
            m.views.insert(account, views);
        })
    }

    /// The admin behind this mock.
    pub fn admin(&self) -> &TokenAdmin {
        &self.inner.admin
    }

    /// The counters every answer is recorded in (the authenticator's).
    pub(crate) fn metrics(&self) -> &Metrics {
        self.inner.authenticator.metrics_handle()
    }

    pub(crate) fn views_of(&self, account: AccountId) -> Vec<View> {
        self.inner
            .views
            .get(&account)
            .cloned()
            .unwrap_or_else(|| fixtures::default_views(account))
    }

    /// The views `principal` may see: all of its account's for an API token, those of the
    /// user's data access for a personal token.
    pub(crate) fn visible_views(&self, principal: &Principal) -> Vec<View> {
        let access = principal.data_access();
        let mut views = self.views_of(principal.account_id());
        views.retain(|v| access.allows(&v.id));
        views
    }

    /// Refuse data access naming a view the account does not have.
    pub(crate) fn check_views(&self, account: AccountId, access: &DataAccess) -> Answer<()> {
        unknown_view(&self.views_of(account), access).map_or(Ok(()), |id| {
            Err(MockError::invalid(format!(
                "dataAccess: no view with id {id:?} in this account"
            )))
        })
    }

    /// A rate limit `name` of `quotas` per account on the mock's clock, counted in its
    /// metrics and shared with the other replicas if the mock is, with the draft
    /// `RateLimit-Policy` and `RateLimit` fields on every answer; none when rate limits are
    /// off.
    pub(crate) fn rate_limit(&self, name: &str, quotas: Vec<Quota>) -> RateLimitLayer {
        let quotas = if self.inner.rate_limits {
            quotas
        } else {
            Vec::new()
        };
        let layer = RateLimitLayer::new(quotas)
            .clock(self.inner.clock.clone())
            .metrics(self.metrics().clone())
            .headers(RateLimitHeaders::Draft);
        match &self.inner.shared {
            Some(shared) if self.inner.rate_limits => layer.shared(shared.clone(), name),
            _ => layer,
        }
    }
}

/// The first view id of `access` that is not one of `views`, if any: the check of
/// `POST /admin/users`, `PUT /admin/users/{id}/roles` and `finout-mock user add|roles`.
pub fn unknown_view<'a>(views: &[View], access: &'a DataAccess) -> Option<&'a str> {
    let known: HashSet<&str> = views.iter().map(|v| v.id.as_str()).collect();
    fixtures::unknown_views(&known, access)
        .first()
        .map(|(_, id)| *id)
}

/// Delay the answer by the mock's latency (`Mock::latency`).
pub(crate) async fn delay(State(mock): State<Mock>, request: Request, next: Next) -> Response {
    if !mock.inner.latency.is_zero() {
        tokio::time::sleep(mock.inner.latency).await;
    }
    next.run(request).await
}
