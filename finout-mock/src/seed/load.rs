//! Loading a checked seed: compared with what the store holds (what is there identically
//! stays, what contradicts it is a problem, what a seed put there before and is gone stays
//! gone), then what is new written in one batch.

use std::collections::HashSet;

use time::OffsetDateTime;

use finout_auth::{
    AdminError, ClientId, SecretKey, StoreError, TokenAdmin, UserId,
    crypto::SecretHasher,
    model::{Account, TokenRecord, User},
    store::{Batch, TokenAdminStore},
};

use super::{
    Loaded, Problem, Seed, SeedAccount, SeedError, SeedToken,
    ledger::{self, Kind, Ledger},
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::state::MockDatabase;

/// How many times a load is tried when the store refuses a write because another process
/// wrote the same ids first (replicas loading one seed at once): the next try finds them.
const ATTEMPTS: usize = 3;

/// What a seed adds to a store: the accounts and users not there yet, and the tokens not
/// there yet (their secrets still to hash).
struct Plan<'a> {
    batch: Batch,
    tokens: Vec<(&'a SeedAccount, &'a SeedToken, Option<UserId>)>,
    problems: Vec<Problem>,
    /// The seed's ids in the store, or to be: remembered once the batch is written.
    present: Vec<(Kind, String)>,
    /// Entities not written: a seed put them there before, and they are gone.
    skipped: usize,
}

impl From<StoreError> for SeedError {
    fn from(e: StoreError) -> Self {
        SeedError::Admin(AdminError::Store(e))
    }
}

/// Whether a seed put `id` in the store before (never, without a ledger).
async fn seeded_before(
    ledger: Option<&Ledger<'_>>,
    kind: Kind,
    id: &str,
) -> Result<bool, SeedError> {
    match ledger {
        Some(ledger) => ledger.seeded(kind, id).await.map_err(ledger::failed),
        None => Ok(false),
    }
}

impl Seed {
    /// Load into `admin`'s store, all or nothing (see the [module docs](super)): check the
    /// seed, compare it with the store, then write what is new in one transaction.
    /// Idempotent: loading the same seed again writes nothing. Without a database of the
    /// mock's, nothing is remembered: a revoked token is re-created by the next load (see
    /// `load_with_ledger`, with the feature `sqlite` or `postgres`).
    pub async fn load(&self, admin: &TokenAdmin, hasher: &SecretHasher) -> Result<(), SeedError> {
        self.load_in(admin, hasher, None).await.map(|_| ())
    }

    /// Load as [`load`](Self::load) does and, with `db`, remember there what the seed put in
    /// the store, so that an account, user or token a seed put there before and that is gone
    /// now (revoked, removed) is not re-created. Safe to run from several processes at once
    /// on one store.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub async fn load_with_ledger(
        &self,
        admin: &TokenAdmin,
        hasher: &SecretHasher,
        db: Option<&MockDatabase>,
    ) -> Result<Loaded, SeedError> {
        self.check()?;
        let ledger = match db {
            Some(db) => Some(Ledger::open(db).await.map_err(SeedError::Ledger)?),
            None => None,
        };
        self.load_in(admin, hasher, ledger.as_ref()).await
    }

    async fn load_in(
        &self,
        admin: &TokenAdmin,
        hasher: &SecretHasher,
        ledger: Option<&Ledger<'_>>,
    ) -> Result<Loaded, SeedError> {
        self.check()?;
        let mut attempt = 1;
        let loaded = loop {
            match self.load_once(admin, hasher, ledger).await {
                Err(SeedError::Admin(AdminError::Store(StoreError::Conflict(_))))
                    if attempt < ATTEMPTS =>
                {
                    attempt += 1;
                }
                outcome => break outcome?,
            }
        };
        if loaded.skipped > 0 {
            tracing::info!(
                target: "finout_mock",
                skipped = loaded.skipped,
                "seed: {} accounts, users and tokens a seed created before and that were revoked \
                 or removed since are not re-created",
                loaded.skipped
            );
        }
        Ok(loaded)
    }

    async fn load_once(
        &self,
        admin: &TokenAdmin,
        hasher: &SecretHasher,
        ledger: Option<&Ledger<'_>>,
    ) -> Result<Loaded, SeedError> {
        let plan = self.plan(admin.store().as_ref(), ledger).await?;
        if !plan.problems.is_empty() {
            return Err(SeedError::Invalid(plan.problems));
        }
        let mut batch = plan.batch;
        let now = OffsetDateTime::now_utc();
        // Stores keep microseconds: what a listing reads back equals what was written.
        let now = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        for (account, token, user) in plan.tokens {
            let hash = hasher
                .hash_async(&SecretKey::new(token.secret_key.as_str()))
                .await
                .map_err(AdminError::Hash)?;
            batch = batch.token(TokenRecord::new(
                ClientId::from(token.client_id.as_str()),
                token.kind,
                account.id,
                user,
                token.description.clone(),
                token.role.clone(),
                hash,
                now,
                token.expires_at,
                None,
            ));
        }
        let created = batch.accounts.len() + batch.users.len() + batch.tokens.len();
        if !batch.is_empty() {
            admin.insert_batch(batch).await?;
        }
        // After the batch: a crash in between leaves ids unremembered, which the next load
        // (finding them in the store) remembers; the other order could lose them for good.
        if let Some(ledger) = ledger {
            ledger.record(&plan.present).await.map_err(ledger::failed)?;
        }
        Ok(Loaded {
            created,
            skipped: plan.skipped,
        })
    }

    /// Compare the (checked) seed with the store: what to add, and what contradicts it.
    async fn plan(
        &self,
        store: &dyn TokenAdminStore,
        ledger: Option<&Ledger<'_>>,
    ) -> Result<Plan<'_>, SeedError> {
        let mut plan = Plan {
            batch: Batch::new(),
            tokens: Vec::new(),
            problems: Vec::new(),
            present: Vec::new(),
            skipped: 0,
        };
        for (a, account) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{a}]");
            let id = account.id.to_string();
            let there = store.get_account(account.id).await?.is_some();
            if !there && seeded_before(ledger, Kind::Account, &id).await? {
                // Gone on purpose: nothing of it comes back.
                plan.skipped += 1 + account.users.len() + account.tokens.len();
                continue;
            }
            plan.present.push((Kind::Account, id));
            let stored_users = if there {
                store.list_users(account.id).await?
            } else {
                plan.batch = plan.batch.account(Account {
                    id: account.id,
                    name: account.name.clone(),
                });
                Vec::new()
            };
            let gone_users = plan
                .users(&at, account, &stored_users, store, ledger)
                .await?;
            plan.tokens(&at, account, &gone_users, store, ledger)
                .await?;
        }
        Ok(plan)
    }
}

impl<'a> Plan<'a> {
    fn problem(&mut self, field: String, reason: String) {
        self.problems.push(Problem { field, reason });
    }

    /// Plan `account`'s users; the ids of those a seed put in the store before that are gone.
    async fn users(
        &mut self,
        at: &str,
        account: &'a SeedAccount,
        stored_users: &[User],
        store: &dyn TokenAdminStore,
        ledger: Option<&Ledger<'_>>,
    ) -> Result<HashSet<UserId>, SeedError> {
        let mut gone = HashSet::new();
        for (u, user) in account.users.iter().enumerate() {
            let at = format!("{at}.users[{u}]");
            // Checked already: the email is valid.
            let email = TokenAdmin::normalize_email(&user.email).unwrap_or_default();
            let id = user.id.to_string();
            match store.find_user(user.id).await? {
                Some(found) if found.account_id != account.id => self.problem(
                    format!("{at}.id"),
                    format!(
                        "a user of another account ({}) has this id in the store",
                        found.account_id
                    ),
                ),
                Some(found) if found.email != email => self.problem(
                    format!("{at}.id"),
                    format!(
                        "the store has this user with another email ({})",
                        found.email
                    ),
                ),
                // There already: kept as it is.
                Some(_) => self.present.push((Kind::User, id)),
                None if seeded_before(ledger, Kind::User, &id).await? => {
                    self.skipped += 1;
                    gone.insert(user.id);
                }
                None => match stored_users.iter().find(|s| s.email == email) {
                    Some(other) => self.problem(
                        format!("{at}.email"),
                        format!(
                            "another user of this account ({}) has this email in the store",
                            other.id
                        ),
                    ),
                    None => {
                        let mut new = User::new(user.id, account.id, email, user.roles.clone());
                        new.data_access = user.data_access.clone();
                        self.batch = std::mem::take(&mut self.batch).user(new);
                        self.present.push((Kind::User, id));
                    }
                },
            }
        }
        Ok(gone)
    }

    /// Plan `account`'s tokens; a personal token of a user in `gone_users` is not created.
    async fn tokens(
        &mut self,
        at: &str,
        account: &'a SeedAccount,
        gone_users: &HashSet<UserId>,
        store: &dyn TokenAdminStore,
        ledger: Option<&Ledger<'_>>,
    ) -> Result<(), SeedError> {
        for (t, token) in account.tokens.iter().enumerate() {
            let user = token
                .user
                .as_ref()
                .and_then(|email| account.user_by_email(email))
                .map(|u| u.id);
            let client_id = ClientId::from(token.client_id.as_str());
            let reason = match store.find_token(&client_id).await?.map(|f| f.record) {
                None => {
                    if user.is_some_and(|u| gone_users.contains(&u))
                        || seeded_before(ledger, Kind::Token, &token.client_id).await?
                    {
                        self.skipped += 1;
                    } else {
                        self.tokens.push((account, token, user));
                        self.present.push((Kind::Token, token.client_id.clone()));
                    }
                    continue;
                }
                Some(r) if r.account_id != account.id => format!(
                    "a token of another account ({}) has this client id in the store",
                    r.account_id
                ),
                Some(r) if r.user_id != user => match r.user_id {
                    None => "an API token has this client id in the store".to_owned(),
                    Some(other) => format!(
                        "a personal token of another user ({other}) has this client id in \
                         the store"
                    ),
                },
                // There already: kept as it is.
                Some(_) => {
                    self.present.push((Kind::Token, token.client_id.clone()));
                    continue;
                }
            };
            self.problem(format!("{at}.tokens[{t}].clientId"), reason);
        }
        Ok(())
    }
}
