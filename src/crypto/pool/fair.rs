//! The fair line: jobs queued per account and, within an account, per client id, served
//! round robin at both levels, with a bound on the places (queued + running) of all jobs and
//! a displacement rule that keeps that bound fair.
//!
//! - **Order.** Accounts with queued jobs take turns; within an account, its client ids take
//!   turns; within a client id, first come first served. An account that starts queueing
//!   joins the back of the turn order, so at most one job of every other account with queued
//!   jobs starts before its first one, however many those accounts queued.
//! - **Places.** Queued and running jobs together never exceed the line's length. When the
//!   line is full, a job of an account holding fewer places than the account holding the
//!   most (by two or more) displaces that account's newest queued job, whose caller gets
//!   `auth_busy`; otherwise it is refused. So one account can fill an idle line, but never
//!   keep another account's first job out of it.
//!
//! Pure data under the pool's lock: no threads, no clocks, no waiting.

use std::collections::{HashMap, VecDeque};

use crate::model::{AccountId, ClientId};

/// Whose work a job is: shares are fair per account, then per client id within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Share {
    pub(crate) account: AccountId,
    pub(crate) client: ClientId,
}

/// One account's queued jobs, by client id, and how many of its jobs run.
struct AccountLine<J> {
    /// Client ids with queued jobs, in turn order.
    turns: VecDeque<ClientId>,
    queued_by_id: HashMap<ClientId, VecDeque<J>>,
    queued: usize,
    running: usize,
}

impl<J> Default for AccountLine<J> {
    fn default() -> Self {
        AccountLine {
            turns: VecDeque::new(),
            queued_by_id: HashMap::new(),
            queued: 0,
            running: 0,
        }
    }
}

impl<J> AccountLine<J> {
    /// Places held: queued and running jobs.
    fn places(&self) -> usize {
        self.queued + self.running
    }
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The line is full, and no account holds enough more places than the job's to give
    /// one up.
    Full,
}

/// The line: fair order and a bound on places.
pub(crate) struct FairLine<J> {
    /// Accounts with queued jobs, in turn order.
    turns: VecDeque<AccountId>,
    accounts: HashMap<AccountId, AccountLine<J>>,
    queued: usize,
    running: usize,
    places: usize,
}

impl<J> FairLine<J> {
    /// A line of `places` places (queued + running), at least 1.
    pub(crate) fn new(places: usize) -> Self {
        FairLine {
            turns: VecDeque::new(),
            accounts: HashMap::new(),
            queued: 0,
            running: 0,
            places: places.max(1),
        }
    }

    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running
    }

    /// Whether `account` has jobs queued or running.
    pub(crate) fn holds_places(&self, account: &AccountId) -> bool {
        self.accounts.contains_key(account)
    }

    fn places_of(&self, account: &AccountId) -> usize {
        self.accounts.get(account).map_or(0, AccountLine::places)
    }

    /// Queue `job` for `share`. `Ok(Some(displaced))` when it took the place of another
    /// account's newest queued job (dropping it refuses that job's caller).
    pub(crate) fn push(&mut self, share: &Share, job: J) -> Result<Option<J>, Refusal> {
        let displaced = if self.queued + self.running < self.places {
            None
        } else {
            let mine = self.places_of(&share.account);
            let (victim, most) = self.most_places().ok_or(Refusal::Full)?;
            if most < mine + 2 {
                return Err(Refusal::Full);
            }
            Some(self.pop_newest(&victim))
        };
        let line = self.accounts.entry(share.account).or_default();
        if line.queued == 0 {
            self.turns.push_back(share.account);
        }
        let jobs = line.queued_by_id.entry(share.client.clone()).or_default();
        if jobs.is_empty() {
            line.turns.push_back(share.client.clone());
        }
        jobs.push_back(job);
        line.queued += 1;
        self.queued += 1;
        Ok(displaced)
    }

    /// The account with queued jobs holding the most places (the first in turn order on a
    /// tie), and how many.
    fn most_places(&self) -> Option<(AccountId, usize)> {
        let mut most: Option<(AccountId, usize)> = None;
        for account in &self.turns {
            let places = self.places_of(account);
            if most.is_none_or(|(_, m)| places > m) {
                most = Some((*account, places));
            }
        }
        most
    }

    /// Take `account`'s newest queued job from its client id with the most queued.
    fn pop_newest(&mut self, account: &AccountId) -> J {
        let line = self
            .accounts
            .get_mut(account)
            .expect("an account in turn order has a line");
        let client = line
            .turns
            .iter()
            .max_by_key(|c| line.queued_by_id.get(*c).map_or(0, VecDeque::len))
            .cloned()
            .expect("an account in turn order has queued jobs");
        let jobs = line
            .queued_by_id
            .get_mut(&client)
            .expect("a client id in turn order has a queue");
        let job = jobs.pop_back().expect("a client id in turn order has jobs");
        if jobs.is_empty() {
            line.queued_by_id.remove(&client);
            line.turns.retain(|c| *c != client);
        }
        line.queued -= 1;
        self.queued -= 1;
        if line.queued == 0 {
            self.turns.retain(|a| a != account);
            if line.running == 0 {
                self.accounts.remove(account);
            }
        }
        job
    }

    /// The next job in fair order, now counted as running, with its account (to give to
    /// [`finished`](Self::finished)).
    pub(crate) fn pop(&mut self) -> Option<(AccountId, J)> {
        let account = self.turns.pop_front()?;
        let line = self
            .accounts
            .get_mut(&account)
            .expect("an account in turn order has a line");
        let client = line
            .turns
            .pop_front()
            .expect("an account in turn order has queued jobs");
        let jobs = line
            .queued_by_id
            .get_mut(&client)
            .expect("a client id in turn order has a queue");
        let job = jobs
            .pop_front()
            .expect("a client id in turn order has jobs");
        if jobs.is_empty() {
            line.queued_by_id.remove(&client);
        } else {
            line.turns.push_back(client);
        }
        line.queued -= 1;
        line.running += 1;
        if line.queued > 0 {
            self.turns.push_back(account);
        }
        self.queued -= 1;
        self.running += 1;
        Some((account, job))
    }

    /// A job of `account` taken by [`pop`](Self::pop) is done: its place is free.
    pub(crate) fn finished(&mut self, account: &AccountId) {
        self.running = self.running.saturating_sub(1);
        if let Some(line) = self.accounts.get_mut(account) {
            line.running = line.running.saturating_sub(1);
            if line.places() == 0 {
                self.accounts.remove(account);
            }
        }
    }

    /// Jobs that would start before the first job of an account that has none queued or
    /// running, were it queued now: the running ones and one per account in turn order.
    /// `None` when it would be refused.
    pub(crate) fn ahead_of_a_new_account(&self) -> Option<usize> {
        if self.queued + self.running >= self.places {
            let (_, most) = self.most_places()?;
            if most < 2 {
                return None;
            }
        }
        Some(self.running + self.turns.len())
    }

    /// Drop every queued job (their callers are refused).
    pub(crate) fn clear(&mut self) {
        self.turns.clear();
        self.accounts.retain(|_, line| {
            line.turns.clear();
            line.queued_by_id.clear();
            line.queued = 0;
            line.running > 0
        });
        self.queued = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(account: u128, client: &str) -> Share {
        Share {
            account: AccountId(uuid::Uuid::from_u128(account)),
            client: ClientId::from(client),
        }
    }

    fn drain(line: &mut FairLine<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| line.pop().map(|(_, job)| job)).collect()
    }

    #[test]
    fn accounts_take_turns_whatever_they_queued() {
        let mut line = FairLine::new(100);
        for job in ["a1", "a2", "a3", "a4"] {
            line.push(&share(1, "x"), job).unwrap();
        }
        line.push(&share(2, "y"), "b1").unwrap();
        line.push(&share(3, "z"), "c1").unwrap();
        assert_eq!(drain(&mut line), ["a1", "b1", "c1", "a2", "a3", "a4"]);
    }

    #[test]
    fn a_new_account_waits_for_at_most_one_job_of_each_other() {
        let mut line = FairLine::new(100);
        for job in ["a1", "a2", "a3"] {
            line.push(&share(1, "x"), job).unwrap();
        }
        assert_eq!(line.pop().map(|(_, j)| j), Some("a1"));
        assert_eq!(
            line.ahead_of_a_new_account(),
            Some(2),
            "one running, one account"
        );
        line.push(&share(2, "y"), "b1").unwrap();
        assert_eq!(drain(&mut line), ["a2", "b1", "a3"]);
    }

    #[test]
    fn client_ids_of_one_account_take_turns() {
        let mut line = FairLine::new(100);
        for job in ["x1", "x2", "x3"] {
            line.push(&share(1, "x"), job).unwrap();
        }
        line.push(&share(1, "y"), "y1").unwrap();
        assert_eq!(drain(&mut line), ["x1", "y1", "x2", "x3"]);
    }

    #[test]
    fn a_full_line_displaces_the_biggest_accounts_newest_job() {
        let mut line = FairLine::new(4);
        for job in ["a1", "a2", "a3", "a4"] {
            line.push(&share(1, "x"), job).unwrap();
        }
        assert_eq!(line.push(&share(2, "y"), "b1"), Ok(Some("a4")));
        assert_eq!(line.push(&share(2, "y"), "b2"), Ok(Some("a3")));
        // Two places each: neither gives one up to the other.
        assert_eq!(line.push(&share(2, "y"), "b3"), Err(Refusal::Full));
        assert_eq!(line.push(&share(1, "x"), "a5"), Err(Refusal::Full));
        assert_eq!(line.ahead_of_a_new_account(), Some(2));
        assert_eq!(line.push(&share(3, "z"), "c1"), Ok(Some("a2")));
        assert_eq!(drain(&mut line), ["a1", "b1", "c1", "b2"]);
    }

    #[test]
    fn running_jobs_hold_their_places_until_finished() {
        let mut line = FairLine::new(2);
        line.push(&share(1, "x"), "a1").unwrap();
        line.push(&share(1, "x"), "a2").unwrap();
        let (account, _) = line.pop().unwrap();
        let _ = line.pop().unwrap();
        // Both running: nothing queued to displace.
        assert_eq!(line.push(&share(2, "y"), "b1"), Err(Refusal::Full));
        assert_eq!(line.ahead_of_a_new_account(), None);
        line.finished(&account);
        assert_eq!(line.push(&share(2, "y"), "b1"), Ok(None));
        line.finished(&account);
        assert_eq!((line.running(), line.queued()), (0, 1));
        assert_eq!(drain(&mut line), ["b1"]);
    }

    #[test]
    fn a_line_full_of_single_jobs_refuses_a_new_account() {
        let mut line = FairLine::new(3);
        for (i, job) in ["a", "b", "c"].into_iter().enumerate() {
            line.push(&share(i as u128, "x"), job).unwrap();
        }
        assert_eq!(line.ahead_of_a_new_account(), None);
        assert_eq!(line.push(&share(9, "q"), "d"), Err(Refusal::Full));
    }

    #[test]
    fn cleared_lines_keep_counting_what_runs() {
        let mut line = FairLine::new(3);
        line.push(&share(1, "x"), "a1").unwrap();
        line.push(&share(1, "x"), "a2").unwrap();
        let (account, _) = line.pop().unwrap();
        line.clear();
        assert_eq!((line.running(), line.queued()), (1, 0));
        assert!(line.pop().is_none());
        line.finished(&account);
        assert!(line.accounts.is_empty());
    }
}
