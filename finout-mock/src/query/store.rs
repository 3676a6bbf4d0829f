//! Every account's V2 cost-and-usage queries, in memory: an account keeps at most
//! [`MAX_QUERIES_PER_ACCOUNT`] queries and [`MAX_QUERY_BYTES_PER_ACCOUNT`] bytes of them;
//! past either the oldest is forgotten. A virtual tag's values are held once per version
//! however many queries name it, and the rankings of the most recently read queries are
//! kept.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, Weak, atomic::AtomicUsize, atomic::Ordering},
};

use finout_auth::AccountId;
use time::OffsetDateTime;

use super::{Query, Values};

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
    pub(crate) fn intern(&self, account: AccountId, tag: &str, values: Vec<String>) -> Arc<Values> {
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
    pub(crate) fn insert(
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
    pub(crate) fn keep_ranking(&self, account: AccountId, id: &str, ranked: Arc<[u32]>) {
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

    /// Query `id` of `account`: its creation time, the query and its ranking if kept
    /// (marked read); `None` for an unknown id.
    #[allow(clippy::type_complexity)]
    pub(crate) fn find(
        &self,
        account: AccountId,
        id: &str,
    ) -> Option<(OffsetDateTime, Arc<Query>, Option<Arc<[u32]>>)> {
        let mut all = self.lock();
        let mine = all.get_mut(&account)?;
        mine.reads += 1;
        let read = mine.reads;
        let seq = *mine.ids.get(id)?;
        let stored = mine.queries.get_mut(&seq)?;
        let ranked = stored.ranked.as_mut().map(|(ranked, last)| {
            *last = read;
            ranked.clone()
        });
        Some((stored.created, stored.query.clone(), ranked))
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{ledger, routes::v2::Spec};

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
