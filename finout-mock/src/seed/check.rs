//! A seed's own consistency, checked before any store is read: the admin API's rules, each
//! problem named by its field path.

use std::collections::{HashMap, HashSet, hash_map::Entry};

use finout_auth::{
    Credentials, InvalidRequest, TokenAdmin, UserId,
    model::{TokenKind, User},
};

use super::{Problem, Seed, SeedAccount};
use crate::fixtures;

/// Where the first holder of a value was, by the value.
type Seen<K> = HashMap<K, String>;

/// `Some(first holder's path)` if `key` was seen before; else remembers `at` for it.
fn repeated<K: std::hash::Hash + Eq>(seen: &mut Seen<K>, key: K, at: &str) -> Option<String> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(first.get().clone()),
        Entry::Vacant(slot) => {
            slot.insert(at.to_owned());
            None
        }
    }
}

/// The field of a user that an admin API refusal is about.
fn user_field(why: InvalidRequest) -> &'static str {
    match why {
        InvalidRequest::Email => ".email",
        InvalidRequest::NoRoles
        | InvalidRequest::TooManyRoles
        | InvalidRequest::RoleName
        | InvalidRequest::TooManyPermissions
        | InvalidRequest::Permission => ".roles",
        InvalidRequest::AdminDataAccess
        | InvalidRequest::TooManyDataAccessIds
        | InvalidRequest::DataAccessId => ".dataAccess",
        _ => "",
    }
}

impl Seed {
    /// Every problem of the seed on its own, in the seed's order.
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut found = Problems::default();
        for (a, account) in self.accounts.iter().enumerate() {
            found.account(a, account);
        }
        found.list
    }
}

/// The problems found so far, and the ids seen so far across the whole seed.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    accounts: Seen<finout_auth::AccountId>,
    users: Seen<UserId>,
    client_ids: Seen<String>,
}

impl Problems {
    fn add(&mut self, field: String, reason: impl Into<String>) {
        self.list.push(Problem {
            field,
            reason: reason.into(),
        });
    }

    fn account(&mut self, a: usize, account: &SeedAccount) {
        let at = format!("accounts[{a}]");
        if let Some(first) = repeated(&mut self.accounts, account.id, &at) {
            self.add(
                format!("{at}.id"),
                format!("the account {first} already has this id"),
            );
        }
        let ids: HashSet<String> = match &account.views {
            Some(views) => {
                let mut seen = Seen::new();
                for (v, view) in views.iter().enumerate() {
                    let here = format!("{at}.views[{v}]");
                    if let Some(first) = repeated(&mut seen, view.id.as_str(), &here) {
                        self.add(
                            format!("{here}.id"),
                            format!("the view {first} already has this id"),
                        );
                    }
                }
                views.iter().map(|v| v.id.clone()).collect()
            }
            None => fixtures::default_views(account.id)
                .into_iter()
                .map(|v| v.id)
                .collect(),
        };
        let views: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.users(&at, account, &views);
        self.tokens(&at, account);
    }

    fn users(&mut self, at: &str, account: &SeedAccount, views: &HashSet<&str>) {
        let mut emails = Seen::new();
        for (u, user) in account.users.iter().enumerate() {
            let at = format!("{at}.users[{u}]");
            if let Some(first) = repeated(&mut self.users, user.id, &at) {
                self.add(
                    format!("{at}.id"),
                    format!("the user {first} already has this id"),
                );
            }
            match TokenAdmin::check_new_user(&user.email, &user.roles, &user.data_access) {
                Ok(email) => {
                    if let Some(first) = repeated(&mut emails, email, &at) {
                        self.add(
                            format!("{at}.email"),
                            format!("the user {first} already has this email"),
                        );
                    }
                }
                Err(why) => self.add(format!("{at}{}", user_field(why)), why.to_string()),
            }
            for (i, _) in fixtures::unknown_views(views, &user.data_access) {
                self.add(
                    format!("{at}.dataAccess[{i}]"),
                    "no view of this account has that id",
                );
            }
        }
    }

    fn tokens(&mut self, at: &str, account: &SeedAccount) {
        for (t, token) in account.tokens.iter().enumerate() {
            let at = format!("{at}.tokens[{t}]");
            for (name, value) in [
                ("clientId", &token.client_id),
                ("secretKey", &token.secret_key),
            ] {
                if Credentials::new(value, "x").is_err() {
                    self.add(
                        format!("{at}.{name}"),
                        "must be 1-256 visible ASCII characters",
                    );
                }
            }
            if let Some(first) = repeated(&mut self.client_ids, token.client_id.clone(), &at) {
                self.add(
                    format!("{at}.clientId"),
                    format!("the token {first} already has this client id"),
                );
            }
            match (token.kind, &token.user) {
                (TokenKind::Api, Some(_)) => {
                    self.add(format!("{at}.user"), "an API token has no user");
                }
                (TokenKind::Personal, None) => {
                    self.add(
                        format!("{at}.user"),
                        "a personal token names its user's email",
                    );
                }
                (TokenKind::Personal, Some(email)) => match account.user_by_email(email) {
                    None => self.add(
                        format!("{at}.user"),
                        "no user of this account has that email",
                    ),
                    // The rule the admin API applies when it issues a personal token.
                    Some(user)
                        if !User::new(user.id, account.id, "", user.roles.clone())
                            .holds(&token.role) =>
                    {
                        self.add(
                            format!("{at}.role"),
                            "a personal token's role must be within its user's roles",
                        );
                    }
                    Some(_) => {}
                },
                (TokenKind::Api, None) => {}
            }
        }
    }
}
