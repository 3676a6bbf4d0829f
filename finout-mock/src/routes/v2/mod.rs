//! Finout's V2 API (beta): query language, asynchronous cost and usage, virtual tags with
//! versions and metadata. Each route has the rate limit Finout documents for it, per
//! account (`finout_auth::middleware::RateLimitLayer`), unless `Mock::rate_limits(false)`.

mod cost;
mod keys;
mod rows;
mod spec;
mod tags;

use axum::{
    Router,
    handler::Handler,
    routing::{MethodRouter, get, post},
};
use finout_auth::middleware::Quota;

use crate::mock::Mock;

#[cfg(test)]
pub(crate) use spec::Spec;

/// The V2 routes, each limited per account as Finout's docs say (requests per minute, and
/// per day for `generate-query`).
pub(crate) fn router(mock: &Mock) -> Router<Mock> {
    // Each limit has a name of its own: its counts, in this process or shared by replicas.
    let limit =
        |name: &str, per_minute: u32| mock.rate_limit(name, vec![Quota::per_minute(per_minute)]);
    let ql_keys = get(keys::keys.layer(limit("ql-keys", 50)));
    let ql_values = get(keys::values.layer(limit("ql-values", 50)));
    let tag: MethodRouter<Mock> = get(tags::get.layer(limit("tag-get", 100)))
        .put(tags::update.layer(limit("tag-put", 100)))
        .delete(tags::delete.layer(limit("tag-delete", 100)));
    Router::new()
        .route(
            "/v2/data/cost-usage/generate-query",
            post(cost::generate.layer(mock.rate_limit(
                "generate-query",
                vec![Quota::per_minute(50), Quota::per_day(10_000)],
            ))),
        )
        .route(
            "/v2/data/cost-usage/{query_id}/status",
            get(cost::query_status.layer(limit("query-status", 50))),
        )
        .route(
            "/v2/data/cost-usage/{query_id}/results",
            get(cost::results.layer(limit("query-results", 50))),
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
            get(tags::list.layer(limit("tags-list", 50)))
                .post(tags::create.layer(limit("tags-create", 50))),
        )
        .route("/v2/virtual-tags/{id}", tag)
        .route(
            "/v2/virtual-tags/{id}/versions",
            get(tags::versions.layer(limit("tag-versions", 50))),
        )
        .route(
            "/v2/virtual-tags/{id}/versions/{version}",
            get(tags::version.layer(limit("tag-version", 100))),
        )
        .route(
            "/v2/virtual-tags/{id}/metadata",
            get(tags::get_metadata.layer(limit("tag-metadata-get", 100)))
                .put(tags::put_metadata.layer(limit("tag-metadata-put", 100))),
        )
}
