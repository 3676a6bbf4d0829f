//! Loading a checked seed: compared with what the store holds (what is there identically
//! stays, what contradicts it is a problem), then what is new written in one batch.

use time::OffsetDateTime;

use finout_auth::{
    AdminError, ClientId, SecretKey, TokenAdmin, UserId,
    crypto::SecretHasher,
    model::{Account, TokenRecord, User},
    store::{Batch, TokenAdminStore},
};

use super::{Problem, Seed, SeedAccount, SeedError, SeedToken};

/// What a seed adds to a store: the accounts and users not there yet, and the tokens not
/// there yet (their secrets still to hash).
struct Plan<'a> {
    batch: Batch,
    tokens: Vec<(&'a SeedAccount, &'a SeedToken, Option<UserId>)>,
    problems: Vec<Problem>,
}

impl Seed {
    /// Load into `admin`'s store, all or nothing (see the [module docs](super)): check the
    /// seed, compare it with the store, then write what is new in one transaction.
    /// Idempotent: loading the same seed again writes nothing.
    pub async fn load(&self, admin: &TokenAdmin, hasher: &SecretHasher) -> Result<(), SeedError> {
        self.check()?;
        let plan = self.plan(admin.store().as_ref()).await?;
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
        if !batch.is_empty() {
            admin.insert_batch(batch).await?;
        }
        Ok(())
    }

    /// Compare the (checked) seed with the store: what to add, and what contradicts it.
    async fn plan(&self, store: &dyn TokenAdminStore) -> Result<Plan<'_>, AdminError> {
        let mut plan = Plan {
            batch: Batch::new(),
            tokens: Vec::new(),
            problems: Vec::new(),
        };
        for (a, account) in self.accounts.iter().enumerate() {
            let at = format!("accounts[{a}]");
            let stored_users = if store.get_account(account.id).await?.is_some() {
                store.list_users(account.id).await?
            } else {
                plan.batch = plan.batch.account(Account {
                    id: account.id,
                    name: account.name.clone(),
                });
                Vec::new()
            };
            for (u, user) in account.users.iter().enumerate() {
                let at = format!("{at}.users[{u}]");
                // Checked already: the email is valid.
                let email = TokenAdmin::normalize_email(&user.email).unwrap_or_default();
                let mut problem = |field: &str, reason: String| {
                    plan.problems.push(Problem {
                        field: format!("{at}.{field}"),
                        reason,
                    })
                };
                match store.find_user(user.id).await? {
                    Some(found) if found.account_id != account.id => problem(
                        "id",
                        format!(
                            "a user of another account ({}) has this id in the store",
                            found.account_id
                        ),
                    ),
                    Some(found) if found.email != email => problem(
                        "id",
                        format!(
                            "the store has this user with another email ({})",
                            found.email
                        ),
                    ),
                    Some(_) => {} // there already: kept as it is
                    None => match stored_users.iter().find(|s| s.email == email) {
                        Some(other) => problem(
                            "email",
                            format!(
                                "another user of this account ({}) has this email in the store",
                                other.id
                            ),
                        ),
                        None => {
                            let mut new = User::new(user.id, account.id, email, user.roles.clone());
                            new.data_access = user.data_access.clone();
                            plan.batch = plan.batch.user(new);
                        }
                    },
                }
            }
            for (t, token) in account.tokens.iter().enumerate() {
                let user = token
                    .user
                    .as_ref()
                    .and_then(|email| account.user_by_email(email))
                    .map(|u| u.id);
                let found = store
                    .find_token(&ClientId::from(token.client_id.as_str()))
                    .await?;
                let reason = match found.map(|f| f.record) {
                    None => {
                        plan.tokens.push((account, token, user));
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
                    Some(_) => continue, // there already: kept as it is
                };
                plan.problems.push(Problem {
                    field: format!("{at}.tokens[{t}].clientId"),
                    reason,
                });
            }
        }
        Ok(plan)
    }
}
