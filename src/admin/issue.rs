//! Issuing a token: validation, lineage (the issuer's existence and expiry), hashing the new
//! secret on the admin's own bounded pool, and storing it under the caps.

use std::time::Duration;

use time::OffsetDateTime;

use super::{
    TokenAdmin,
    error::AdminError,
    not_found,
    validate::{self, check_description},
};
use crate::{
    crypto::pool::Share,
    error::StoreError,
    model::{
        AccountId, ClientId, IssuedToken, NewToken, SecretHash, SecretKey, TokenKind, TokenRecord,
        UserId,
    },
};

/// How often issuing draws a new client id after a collision before it gives up.
const CLIENT_ID_ATTEMPTS: usize = 4;

/// When `auth_busy` from issuing tells the client to retry.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

impl TokenAdmin {
    /// Issue a token; `issuer`: the token whose request asks for it (its lineage).
    pub(crate) async fn issue(
        &self,
        account: AccountId,
        kind: TokenKind,
        user: Option<UserId>,
        created_by: Option<UserId>,
        issuer: Option<&ClientId>,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        check_description(&new.description)?;
        validate::check_role(&new.role)?;
        if let Some(user) = user {
            let user = self
                .store
                .get_user(account, user)
                .await?
                .ok_or(AdminError::NotFound("user"))?;
            if !user.holds(&new.role) {
                return Err(AdminError::Forbidden(
                    "a personal token's role must be within its user's roles",
                ));
            }
        }
        let now = self.clock.now();
        let mut expires_at = validate::expiry(now, new.expires_in)?;
        if let Some(issuer) = issuer {
            // Never outlives its issuer (which must still be there and valid).
            let parent = self
                .store
                .find_token(issuer)
                .await?
                .filter(|p| p.record.account_id == account)
                .ok_or(AdminError::NotFound("issuing token"))?;
            if parent.record.is_expired_at(now) {
                return Err(AdminError::Forbidden("the issuing token has expired"));
            }
            if let Some(limit) = parent.record.expires_at {
                expires_at = Some(expires_at.map_or(limit, |at| at.min(limit)));
            }
        }
        let (secret, secret_hash) = self.new_secret(account, issuer).await?;
        // Ids are random; a collision is astronomically rare but must not overwrite a token.
        let mut attempts = 1;
        loop {
            let record = TokenRecord::new(
                self.generator.client_id(),
                kind,
                account,
                user,
                new.description.clone(),
                new.role.clone(),
                secret_hash.clone(),
                truncate_to_micros(now),
                expires_at.map(truncate_to_micros),
                created_by,
            )
            .with_issuer(issuer.cloned());
            match self
                .store
                .insert_token_purging(record.clone(), self.limits)
                .await
            {
                Ok(purged) => {
                    // A lookup of this id before it existed may be cached as "unknown";
                    // what was purged to make room is gone.
                    let mut changed: Vec<ClientId> = purged.all().cloned().collect();
                    changed.push(record.client_id.clone());
                    self.invalidate(&changed).await;
                    return Ok(IssuedToken {
                        client_id: record.client_id.clone(),
                        secret_key: secret,
                        info: record.info(),
                    });
                }
                Err(StoreError::Conflict("client id")) if attempts < CLIENT_ID_ATTEMPTS => {
                    attempts += 1;
                }
                Err(e) => return Err(not_found(e)),
            }
        }
    }
}

impl TokenAdmin {
    /// A new secret and its hash, hashed on the admin's own pool, fair between accounts and
    /// between the tokens asking within one (`asking`; `None` for the system).
    pub(super) async fn new_secret(
        &self,
        account: AccountId,
        asking: Option<&ClientId>,
    ) -> Result<(SecretKey, SecretHash), AdminError> {
        let secret = self.generator.secret_key();
        let (hasher, to_hash) = (self.hasher.clone(), secret.clone());
        let share = Share {
            account,
            client: asking.cloned().unwrap_or_else(|| ClientId::from("")),
        };
        let hash = self
            .hashing
            .run(share, move || hasher.hash(&to_hash))
            .await
            .map_err(|_| AdminError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            })?
            .map_err(AdminError::Hash)?;
        Ok((secret, hash))
    }
}

/// Stores keep microseconds (PostgreSQL's precision); truncate so that what an issue returns
/// equals what a later listing reads back.
pub(super) fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use super::*;
    use crate::{
        model::Role,
        store::{MemoryTokenStore, TokenFilter, TokenLimits},
    };

    /// 128 concurrent issues with real argon2 parameters (~19 MiB each): never more than the
    /// pool's one thread hashing at once (so peak memory is one hash's, not 128), the rest
    /// waiting in a line of 16 or refused at once with `Busy`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn issuing_is_bounded_by_its_own_pool() {
        let admin = TokenAdmin::new(Arc::new(MemoryTokenStore::new()))
            .with_token_limits(TokenLimits::unlimited());
        let account = admin.create_account("Burst").await.unwrap();
        let (stop, most) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let sampler = std::thread::spawn({
            let (hashing, stop, most) = (admin.hashing.clone(), stop.clone(), most.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    most.fetch_max(hashing.running(), Ordering::Relaxed);
                    std::thread::yield_now();
                }
            }
        });
        let issues: Vec<_> = (0..128)
            .map(|i| {
                let admin = admin.clone();
                tokio::spawn(async move {
                    admin
                        .issue_api_token(
                            account.id,
                            None,
                            NewToken::new(format!("t{i}"), Role::Basic),
                        )
                        .await
                })
            })
            .collect();
        let (mut issued, mut busy) = (0, 0);
        for issue in issues {
            match issue.await.unwrap() {
                Ok(_) => issued += 1,
                Err(AdminError::Busy { .. }) => busy += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        assert_eq!(most.load(Ordering::Relaxed), 1, "one hash at a time");
        assert!(issued >= 17 && busy > 0, "{issued} issued, {busy} busy");
        let listed = admin
            .list_tokens(account.id, TokenFilter::All)
            .await
            .unwrap();
        assert_eq!(listed.len(), issued, "a refused issue stores nothing");
    }
}
