//! Finout's asynchronous cost-and-usage query (V2): `generate-query` answers a `queryId`;
//! `status` says `queued`, then `running`, then `completed` once the mock's query delay has
//! passed (`Mock::query_delay`, on the mock's clock); `results` pages the rows by cursor
//! and answers 202 before completion. Results are kept 24 hours (then `expired`, 410); a
//! query is forgotten a further 24 hours later (404). An account keeps at most
//! [`MAX_QUERIES_PER_ACCOUNT`] queries and [`MAX_QUERY_BYTES_PER_ACCOUNT`] bytes of them;
//! past either the oldest is forgotten. A query's rows are ranked once, when its results are
//! first asked for (on the blocking pool if costly), and each page is built from that
//! ranking; the rows themselves are never stored.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, Weak, atomic::AtomicUsize, atomic::Ordering},
};

use axum::{Json, extract::State, http::StatusCode};
use finout_auth::{AccountId, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    rows,
    spec::{Query, Spec, Values},
};
use crate::{
    Mock,
    error::{Answer, Body, MockError, Params, Path},
    ledger,
};

/// How long results are kept after completing.
const KEPT: Duration = Duration::hours(24);
/// The most queries an account keeps (three days of Finout's daily limit); past it, the
/// oldest is forgotten.
pub(crate) const MAX_QUERIES_PER_ACCOUNT: usize = 30_000;
/// The most bytes an account's queries hold (their virtual-tag values, each version of a
/// tag held once however many queries name it, and the queries themselves); past it, the
/// oldest are forgotten.
pub(crate) const MAX_QUERY_BYTES_PER_ACCOUNT: usize = 64 * 1024 * 1024;
/// The most queries of an account whose ranking is kept (4 bytes a row, at most
/// 100,000 rows: 400 KB each); the least recently read loses its ranking first.
const RANKINGS_PER_ACCOUNT: usize = 8;
/// Queries costing more work units than this are ranked on the blocking pool, not on the
/// async workers.
const INLINE_WORK_UNITS: u64 = 1_000_000;
/// The most bytes a results page is built to, about: past it, the page holds fewer rows
/// than asked (`nextCursor` goes on from there).
pub(crate) const MAX_PAGE_BYTES: u64 = 4 * 1024 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

#[derive(Debug)]
struct Stored {
    id: String,
    query: Arc<Query>,
    created: OffsetDateTime,
    /// The bytes this query holds besides its virtual-tag values.
    weight: usize,
    /// Its rows in order, once a results page was asked for, and when last read.
    ranked: Option<(Arc<[u32]>, u64)>,
}

/// One account's queries.
#[derive(Debug, Default)]
struct AccountQueries {
    /// By order of creation.
    queries: BTreeMap<u64, Stored>,
    ids: HashMap<String, u64>,
    next: u64,
    /// Sum of the queries' `weight`.
    weight: usize,
    /// Bytes of virtual-tag values held by the account's queries (given back as the last
    /// query holding a version is forgotten).
    values: Arc<AtomicUsize>,
    /// The values of each virtual tag last named, to share with the next query naming the
    /// same version (at most one entry per tag the account has or had).
    interned: HashMap<String, Weak<Values>>,
    /// Read counter for the rankings' least-recently-read order.
    reads: u64,
}

impl AccountQueries {
    fn held(&self) -> usize {
        self.values
            .load(Ordering::Relaxed)
            .saturating_add(self.weight)
    }

    fn forget_oldest(&mut self) -> bool {
        let Some((_, stored)) = self.queries.pop_first() else {
            return false;
        };
        self.ids.remove(&stored.id);
        self.weight = self.weight.saturating_sub(stored.weight);
        true
    }

    /// Forget the queries created before `before` (their results expired a day ago).
    fn forget_before(&mut self, before: OffsetDateTime) {
        while self
            .queries
            .first_key_value()
            .is_some_and(|(_, q)| q.created < before)
        {
            self.forget_oldest();
        }
    }
}

/// Every account's queries.
#[derive(Debug, Default)]
pub(crate) struct Queries(Mutex<HashMap<AccountId, AccountQueries>>);

impl Queries {
    fn lock(&self) -> MutexGuard<'_, HashMap<AccountId, AccountQueries>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `values` of the account's virtual tag `tag`: the ones a query already holds if they
    /// are the same, else these, charged to the account.
    fn intern(&self, account: AccountId, tag: &str, values: Vec<String>) -> Arc<Values> {
        let mut all = self.lock();
        let mine = all.entry(account).or_default();
        if let Some(held) = mine.interned.get(tag).and_then(Weak::upgrade)
            && held.list == values
        {
            return held;
        }
        mine.interned.retain(|_, v| v.strong_count() > 0);
        let fresh = Arc::new(Values::new(values, Some(mine.values.clone())));
        mine.interned.insert(tag.to_owned(), Arc::downgrade(&fresh));
        fresh
    }

    /// Keep `query` (its values charged already, by [`intern`](Self::intern)), forgetting
    /// the queries created before `forget_before` and the oldest past the caps; answer its id.
    fn insert(
        &self,
        account: AccountId,
        query: Query,
        now: OffsetDateTime,
        forget_before: Option<OffsetDateTime>,
    ) -> String {
        let weight = query.weight();
        let id = uuid::Uuid::new_v4().to_string();
        let mut all = self.lock();
        let mine = all.entry(account).or_default();
        if let Some(before) = forget_before {
            mine.forget_before(before);
        }
        while (mine.queries.len() >= MAX_QUERIES_PER_ACCOUNT
            || mine.held().saturating_add(weight) > MAX_QUERY_BYTES_PER_ACCOUNT)
            && mine.forget_oldest()
        {}
        let seq = mine.next;
        mine.next += 1;
        mine.weight = mine.weight.saturating_add(weight);
        mine.ids.insert(id.clone(), seq);
        let query = Arc::new(query);
        let stored = Stored {
            id: id.clone(),
            query,
            created: now,
            weight,
            ranked: None,
        };
        mine.queries.insert(seq, stored);
        id
    }

    /// Keep `ranked` as query `id`'s ranking, dropping the least recently read ranking past
    /// [`RANKINGS_PER_ACCOUNT`].
    fn keep_ranking(&self, account: AccountId, id: &str, ranked: Arc<[u32]>) {
        let mut all = self.lock();
        let Some(mine) = all.get_mut(&account) else {
            return;
        };
        mine.reads += 1;
        let read = mine.reads;
        let Some(seq) = mine.ids.get(id).copied() else {
            return;
        };
        if let Some(stored) = mine.queries.get_mut(&seq) {
            stored.ranked = Some((ranked, read));
        }
        let mut kept: Vec<(u64, u64)> = mine
            .queries
            .iter()
            .filter_map(|(seq, q)| q.ranked.as_ref().map(|(_, last)| (*last, *seq)))
            .collect();
        if kept.len() > RANKINGS_PER_ACCOUNT {
            kept.sort_unstable();
            for (_, seq) in &kept[..kept.len() - RANKINGS_PER_ACCOUNT] {
                if let Some(q) = mine.queries.get_mut(seq) {
                    q.ranked = None;
                }
            }
        }
    }

    /// Bytes every account's queries hold.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn held_by_all(&self) -> usize {
        self.lock()
            .values()
            .map(AccountQueries::held)
            .fold(0, usize::saturating_add)
    }

    /// Bytes `account`'s queries hold, and how many it keeps.
    #[cfg(test)]
    fn held(&self, account: AccountId) -> (usize, usize) {
        self.lock()
            .get(&account)
            .map_or((0, 0), |q| (q.held(), q.queries.len()))
    }
}

enum Status {
    Queued,
    Running,
    Completed {
        at: OffsetDateTime,
        expires: OffsetDateTime,
    },
    Expired,
}

fn status(created: OffsetDateTime, delay: Duration, now: OffsetDateTime) -> Status {
    // A delay past the calendar's end never completes.
    let (Some(half), Some(done)) = (created.checked_add(delay / 2), created.checked_add(delay))
    else {
        return Status::Running;
    };
    let expires = done.checked_add(KEPT);
    if now < half {
        Status::Queued
    } else if now < done {
        Status::Running
    } else if let Some(expires) = expires.filter(|e| now < *e) {
        Status::Completed { at: done, expires }
    } else {
        Status::Expired
    }
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn delay(mock: &Mock) -> Duration {
    Duration::try_from(mock.inner.query_delay).unwrap_or(Duration::MAX)
}

pub(crate) async fn generate(
    State(mock): State<Mock>,
    principal: Principal,
    Body(spec): Body<Spec>,
) -> Answer<Json<Value>> {
    crate::routes::require_all_data(&principal)?;
    let account = principal.account_id();
    let now = mock.now();
    let today = ledger::day_of(now);
    let queries = mock.inner.queries.clone();
    let intern = move |id: &str, values: Vec<String>| queries.intern(account, id, values);
    let query = ledger::with_tags(&mock.inner.state, account, move |tags, budget| {
        spec.clone().check(today, tags, budget, &intern)
    })
    .await?;
    let queries = &mock.inner.queries;
    // Queries created before this are expired since a day: forgotten.
    let forget_before = now
        .checked_sub(delay(&mock))
        .and_then(|t| t.checked_sub(KEPT + KEPT));
    let id = queries.insert(account, query, now, forget_before);
    Ok(Json(
        json!({"requestId": crate::request_id::current().as_str(), "data": {"queryId": id}}),
    ))
}

/// The query's creation time, the query and its ranking if kept; 404 for an unknown id.
#[allow(clippy::type_complexity)]
fn find(
    mock: &Mock,
    account: AccountId,
    id: &str,
) -> Answer<(OffsetDateTime, Arc<Query>, Option<Arc<[u32]>>)> {
    let mut all = mock.inner.queries.lock();
    let mine = all
        .get_mut(&account)
        .ok_or_else(|| MockError::not_found("query"))?;
    mine.reads += 1;
    let read = mine.reads;
    let seq = *mine
        .ids
        .get(id)
        .ok_or_else(|| MockError::not_found("query"))?;
    let stored = mine
        .queries
        .get_mut(&seq)
        .ok_or_else(|| MockError::not_found("query"))?;
    let ranked = stored.ranked.as_mut().map(|(ranked, last)| {
        *last = read;
        ranked.clone()
    });
    Ok((stored.created, stored.query.clone(), ranked))
}

pub(crate) async fn query_status(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    crate::routes::require_all_data(&principal)?;
    let account = principal.account_id();
    let (created, query, ranked) = find(&mock, account, &id)?;
    let data = match status(created, delay(&mock), mock.now()) {
        Status::Queued => json!({"status": "queued"}),
        Status::Running => json!({"status": "running"}),
        Status::Completed { at, expires } => json!({
            "status": "completed",
            "completedAt": iso(at),
            "expiredAt": iso(expires),
            "totalRows": ranked.map_or_else(
                || rows::count(&query, &account.to_string()),
                |ranked| ranked.len(),
            ),
        }),
        Status::Expired => json!({"status": "expired"}),
    };
    Ok(Json(
        json!({"requestId": crate::request_id::current().as_str(), "data": data}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    #[serde(default)]
    page_size: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

pub(crate) async fn results(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Params(page): Params<Page>,
) -> Answer<Json<Value>> {
    crate::routes::require_all_data(&principal)?;
    let size = page.page_size.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&size) {
        return Err(MockError::invalid(format!("pageSize must be 1-{MAX_PAGE}")));
    }
    let offset = match page.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| MockError::invalid("cursor: not a cursor this API returned"))?,
    };
    let account = principal.account_id();
    let (created, query, ranked) = find(&mock, account, &id)?;
    match status(created, delay(&mock), mock.now()) {
        Status::Queued => Err(MockError::v2(
            StatusCode::ACCEPTED,
            "QUERY_QUEUED",
            "the query is queued; poll its status",
        )),
        Status::Running => Err(MockError::v2(
            StatusCode::ACCEPTED,
            "QUERY_RUNNING",
            "the query is running; poll its status",
        )),
        Status::Expired => Err(MockError::v2(
            StatusCode::GONE,
            "RESULTS_EXPIRED",
            "results are kept 24 hours; generate the query again",
        )),
        Status::Completed { .. } => {
            // A page holds at most `MAX_PAGE_BYTES` of rows, about.
            let fit = usize::try_from(MAX_PAGE_BYTES / query.row_bytes().max(1)).unwrap_or(1);
            let size = size.min(fit.max(1));
            let seed = account.to_string();
            let costly = query.work_units() > INLINE_WORK_UNITS;
            let build = move || {
                let fresh = ranked.is_none();
                let ranked: Arc<[u32]> = ranked.unwrap_or_else(|| rows::rank(&query, &seed).into());
                let total = ranked.len();
                let rows = if offset > total {
                    None
                } else {
                    let end = offset.saturating_add(size).min(total);
                    Some(rows::page(
                        &query,
                        &seed,
                        ranked.get(offset..end).unwrap_or_default(),
                    ))
                };
                (fresh.then_some(ranked), rows, total)
            };
            let (fresh, rows, total) = if costly {
                tokio::task::spawn_blocking(build).await.map_err(|e| {
                    tracing::error!(target: "finout_mock", error = %e, "ranking a query failed");
                    MockError::auth(finout_auth::ErrorCode::AuthUnavailable)
                })?
            } else {
                build()
            };
            if let Some(ranked) = fresh {
                mock.inner.queries.keep_ranking(account, &id, ranked);
            }
            let rows = rows.ok_or_else(|| MockError::invalid("cursor: past the last row"))?;
            let end = offset.saturating_add(rows.len());
            let has_more = end < total;
            let mut pagination = json!({"hasMore": has_more, "totalRows": total});
            if has_more {
                pagination["nextCursor"] = json!(end.to_string());
            }
            Ok(Json(json!({
                "requestId": crate::request_id::current().as_str(),
                "pagination": pagination,
                "data": rows,
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        serde_json::from_value(json!({
            "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64,
                     "unixTimeMillisecondsEnd": 1_717_200_000_000_i64},
            "timeInterval": {"interval": "day"},
            "measurements": [{"type": "netAmortizedCost"}],
            "dimensions": [{"costCenter": "Virtual Tags", "key": "team"}]
        }))
        .unwrap()
    }

    /// An account's tags: one, of id `team`.
    fn team() -> crate::state::tags::AccountTags {
        let fields = json!({"name": "Team", "rules": [], "defaultValue": "x"});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let mut tag =
            crate::state::tags::StoredTag::new(fields, "ci", OffsetDateTime::UNIX_EPOCH, None);
        tag.id = "team".into();
        let mut tags = crate::state::tags::AccountTags::default();
        tags.put(Arc::new(tag), 100);
        tags
    }

    /// Generate one query naming tag `team` whose values are `values`.
    fn generate(queries: &Queries, account: AccountId, values: &[String]) -> String {
        let intern = |id: &str, _: Vec<String>| queries.intern(account, id, values.to_vec());
        let query = spec()
            .check(0, &team(), ledger::MAX_EVALUATION_WORK, &intern)
            .unwrap();
        queries.insert(account, query, OffsetDateTime::UNIX_EPOCH, None)
    }

    fn megabyte(c: char) -> String {
        c.to_string().repeat(1 << 20)
    }

    #[test]
    fn a_thousand_queries_naming_one_tag_hold_its_values_once() {
        let (queries, account) = (Queries::default(), AccountId::new_v4());
        let values = vec![megabyte('a'), megabyte('b')];
        for _ in 0..1_000 {
            generate(&queries, account, &values);
        }
        let (held, kept) = queries.held(account);
        assert_eq!(kept, 1_000);
        // 2 MiB of values once, and about 1 KB a query.
        assert!(held < (2 << 20) + 1_000 * 2_048, "{held}");
    }

    #[test]
    fn queries_naming_ever_new_values_stay_within_the_budget() {
        let (queries, account) = (Queries::default(), AccountId::new_v4());
        let other = AccountId::new_v4();
        let theirs = generate(&queries, other, &[megabyte('z')]);
        let mut ids = Vec::new();
        for i in 0..1_000u32 {
            // A new version of the tag each time: 1 MiB of values no other query shares.
            let values = vec![format!("{i}{}", megabyte('v'))];
            ids.push(generate(&queries, account, &values));
            let (held, _) = queries.held(account);
            assert!(held <= MAX_QUERY_BYTES_PER_ACCOUNT, "{held} after {i}");
        }
        let (_, kept) = queries.held(account);
        assert!((50..100).contains(&kept), "{kept}");
        // The newest are the ones kept; another account's query is untouched.
        let all = queries.lock();
        assert!(all[&account].ids.contains_key(ids.last().unwrap()));
        assert!(!all[&account].ids.contains_key(&ids[0]));
        assert!(all[&other].ids.contains_key(&theirs));
    }

    #[test]
    fn rankings_are_kept_for_the_most_recently_read_queries_only() {
        let (queries, account) = (Queries::default(), AccountId::new_v4());
        let values = vec!["x".to_owned()];
        let ids: Vec<String> = (0..RANKINGS_PER_ACCOUNT + 3)
            .map(|_| generate(&queries, account, &values))
            .collect();
        for id in &ids {
            queries.keep_ranking(account, id, Arc::from(vec![0u32]));
        }
        // The first query is ranked again: it is the most recent now.
        queries.keep_ranking(account, &ids[0], Arc::from(vec![1u32]));
        let all = queries.lock();
        let mine = &all[&account];
        let ranked: Vec<&str> = mine
            .queries
            .values()
            .filter(|q| q.ranked.is_some())
            .map(|q| q.id.as_str())
            .collect();
        assert_eq!(ranked.len(), RANKINGS_PER_ACCOUNT);
        assert!(ranked.contains(&ids[0].as_str()));
        assert!(
            !ranked.contains(&ids[1].as_str()),
            "the least recently read"
        );
        assert!(ranked.contains(&ids.last().unwrap().as_str()));
    }
}
