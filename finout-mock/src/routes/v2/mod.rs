//! Finout's V2 API (beta): query language, asynchronous cost and usage, virtual tags with
//! versions and metadata. Each route has the rate limit Finout documents for it, per
//! account (`finout_auth::middleware::RateLimitLayer`), unless `Mock::rate_limits(false)`.

mod cost;
mod keys;
mod spec;
mod tags;

use axum::{
    Router,
    handler::Handler,
    routing::{MethodRouter, get, post},
};
use finout_auth::middleware::{Quota, RateLimitLayer};

use crate::Mock;

pub(crate) use cost::Queries;

/// The V2 routes, each limited per account as Finout's docs say (requests per minute, and
/// per day for `generate-query`).
pub(crate) fn router(mock: &Mock) -> Router<Mock> {
    let limit = |per_minute: u32| mock.rate_limit(vec![Quota::per_minute(per_minute)]);
    let ql_keys = get(keys::keys.layer(limit(50)));
    let ql_values = get(keys::values.layer(limit(50)));
    let tag: MethodRouter<Mock> = get(tags::get.layer(limit(100)))
        .put(tags::update.layer(limit(100)))
        .delete(tags::delete.layer(limit(100)));
    Router::new()
        .route(
            "/v2/data/cost-usage/generate-query",
            post(
                cost::generate
                    .layer(mock.rate_limit(vec![Quota::per_minute(50), Quota::per_day(10_000)])),
            ),
        )
        .route(
            "/v2/data/cost-usage/{query_id}/status",
            get(cost::query_status.layer(limit(50))),
        )
        .route(
            "/v2/data/cost-usage/{query_id}/results",
            get(cost::results.layer(limit(50))),
        )
        // Finout's page names both paths; the limit is one.
        .route("/v2/query-language/keys", ql_keys.clone())
        .route("/v2/megabill/query-language/keys", ql_keys)
        .route(
            "/v2/query-language/values/{cost_center}/{key}",
            ql_values.clone(),
        )
        .route(
            "/v2/megabill/query-language/values/{cost_center}/{key}",
            ql_values,
        )
        .route(
            "/v2/virtual-tags",
            get(tags::list.layer(limit(50))).post(tags::create.layer(limit(50))),
        )
        .route("/v2/virtual-tags/{id}", tag)
        .route(
            "/v2/virtual-tags/{id}/versions",
            get(tags::versions.layer(limit(50))),
        )
        .route(
            "/v2/virtual-tags/{id}/versions/{version}",
            get(tags::version.layer(limit(100))),
        )
        .route(
            "/v2/virtual-tags/{id}/metadata",
            get(tags::get_metadata.layer(limit(100))).put(tags::put_metadata.layer(limit(100))),
        )
}

impl Mock {
    /// A rate limit of `quotas` per account on the mock's clock, counted in its metrics;
    /// none when rate limits are off.
    fn rate_limit(&self, quotas: Vec<Quota>) -> RateLimitLayer {
        let quotas = if self.inner.rate_limits {
            quotas
        } else {
            Vec::new()
        };
        RateLimitLayer::new(quotas)
            .clock(self.inner.clock.clone())
            .metrics(self.metrics().clone())
    }
}
