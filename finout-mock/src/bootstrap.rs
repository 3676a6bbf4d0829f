//! The first start on a store without the mock's account (or with it empty): the account, an
//! Admin user and a personal token for them, written in one transaction, and the credentials
//! handed over once (prose or JSON on stdout, and optionally a file only the owner can read).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use finout_auth::{
    AdminError, ClientId, Role, SecretKey, StoreError, TokenAdmin, UserId,
    crypto::{CredentialGenerator, SecretHasher, UuidV4Generator},
    model::{Account, TokenKind, TokenRecord, User},
    store::{Batch, TokenFilter},
};
use time::OffsetDateTime;

use crate::MOCK_ACCOUNT;

/// The Admin user the first start creates.
const ADMIN_EMAIL: &str = "admin@finout-mock.local";

/// The credentials the first start created. The secret exists only here.
pub(crate) struct Created {
    user: User,
    client_id: ClientId,
    secret: SecretKey,
}

/// Create the mock account, an Admin user and a personal token for them, all at once, unless
/// the account is in use: `None` then (nothing is written). A kill at any point leaves either
/// nothing or all three.
///
/// An account with no user and no token (a start that could not write its credentials file
/// undid its bootstrap, a `token create` that failed after creating the account) is
/// bootstrapped again: nobody can act in it, and whoever starts the mock on this store can
/// act in it anyway.
pub(crate) async fn bootstrap(admin: &TokenAdmin) -> Result<Option<Created>, AdminError> {
    let exists = admin.store().get_account(MOCK_ACCOUNT).await?.is_some();
    if exists && in_use(admin).await? {
        return Ok(None);
    }
    let generator = UuidV4Generator;
    let (client_id, secret) = (generator.client_id(), generator.secret_key());
    // Hashed before anything is written, so the transaction is all that can be interrupted.
    let hash = SecretHasher::default()
        .hash_async(&secret)
        .await
        .map_err(AdminError::Hash)?;
    let user = User::new(
        UserId::new_v4(),
        MOCK_ACCOUNT,
        ADMIN_EMAIL,
        vec![Role::Admin],
    );
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now);
    let token = TokenRecord::new(
        client_id.clone(),
        TokenKind::Personal,
        MOCK_ACCOUNT,
        Some(user.id),
        "finout-mock bootstrap",
        Role::Admin,
        hash,
        now,
        None,
        Some(user.id),
    );
    let mut batch = Batch::new();
    if !exists {
        batch = batch.account(Account {
            id: MOCK_ACCOUNT,
            name: "finout-mock".into(),
        });
    }
    match admin
        .insert_batch(batch.user(user.clone()).token(token))
        .await
    {
        Ok(()) => Ok(Some(Created {
            user,
            client_id,
            secret,
        })),
        // Another process bootstrapped the same store meanwhile (the account, or the Admin
        // user's email, was taken): its credentials stand.
        Err(AdminError::Store(StoreError::Conflict(_))) if in_use(admin).await? => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the mock's account has a user or a token.
async fn in_use(admin: &TokenAdmin) -> Result<bool, AdminError> {
    let store = admin.store();
    Ok(!store.list_users(MOCK_ACCOUNT).await?.is_empty()
        || !store
            .list_tokens(MOCK_ACCOUNT, TokenFilter::All)
            .await?
            .is_empty())
}

impl Created {
    /// Hand the credentials over: written to `file`, if any, then on stdout (as one JSON line
    /// with `json`). A file that cannot be written undoes the bootstrap — its user goes, with
    /// their token, and the account stays empty, so the next start bootstraps again — since
    /// nobody would ever have this secret; the error says so.
    pub(crate) async fn hand_over(
        &self,
        admin: &TokenAdmin,
        base_url: &str,
        file: Option<&Path>,
        json: bool,
    ) -> Result<(), String> {
        let show = || {
            // On stdout only: the logs, on stderr, never carry a secret.
            if json {
                println!("{}", self.json(base_url));
            } else {
                self.print();
            }
        };
        let Some(path) = file else {
            show();
            return Ok(());
        };
        let Err(e) = write_credentials(path, &self.json(base_url)) else {
            show();
            return Ok(());
        };
        let failed = format!("cannot write the credentials to {}: {e}", path.display());
        match admin.remove_user(MOCK_ACCOUNT, self.user.id).await {
            Ok(_) => Err(format!(
                "{failed}; the bootstrap was undone (the next start creates new credentials)"
            )),
            Err(undo) => {
                // Still live, and nowhere else: shown once.
                show();
                Err(format!(
                    "{failed}; undoing the bootstrap failed too ({undo}): its credentials are \
                     the ones printed above"
                ))
            }
        }
    }

    /// The credentials as scripts read them: `{"accountId","userId","clientId","secretKey",
    /// "baseUrl"}`.
    pub(crate) fn json(&self, base_url: &str) -> serde_json::Value {
        serde_json::json!({
            "accountId": MOCK_ACCOUNT,
            "userId": self.user.id,
            "clientId": self.client_id,
            "secretKey": self.secret.expose_secret(),
            "baseUrl": base_url,
        })
    }

    /// The credentials as a person reads them, on stdout.
    pub(crate) fn print(&self) {
        println!(
            "finout-mock: created account {MOCK_ACCOUNT} and Admin user {} ({}) with a \
             personal token:",
            self.user.email, self.user.id
        );
        println!("  x-finout-client-id: {}", self.client_id);
        println!("  x-finout-secret-key: {}", self.secret.expose_secret());
        println!("  (the secret is shown only now)");
    }
}

/// How many temporary names are tried before giving up: each is random, so a collision
/// means someone creates files there on purpose.
const TEMP_ATTEMPTS: usize = 5;

/// Write `json` to `path`, whole or not at all: into a new file beside it (readable by the
/// owner only, on unix), then renamed over it.
pub(crate) fn write_credentials(path: &Path, json: &serde_json::Value) -> std::io::Result<()> {
    write_via(path, json, || uuid::Uuid::new_v4().simple().to_string())
}

/// [`write_credentials`], with the temporary file's random part from `suffix`.
fn write_via(
    path: &Path,
    json: &serde_json::Value,
    mut suffix: impl FnMut() -> String,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.file_name().is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    }
    let mut options = std::fs::OpenOptions::new();
    // Never an existing file: one put there by someone else is neither written nor removed.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut attempt = 1;
    let (temp, mut file) = loop {
        // Not the target's name: a fixed length, whatever its length.
        let temp = dir.join(format!(".finout-mock-credentials.{}.tmp", suffix()));
        match options.open(&temp) {
            Ok(file) => break (temp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        file.write_all(json.to_string().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        // This process created it (create_new above).
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> serde_json::Value {
        serde_json::json!({"secretKey": "s3cret"})
    }

    /// The files in `dir`, by name, with their contents.
    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap_or_default())
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_file_at_the_old_predictable_name_neither_stops_the_write_nor_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let squatter = dir
            .path()
            .join(format!(".creds.json.{}.tmp", std::process::id()));
        std::fs::write(&squatter, "mine").unwrap();
        write_credentials(&path, &json()).unwrap();
        assert_eq!(std::fs::read_to_string(&squatter).unwrap(), "mine");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, json());
        assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    }

    #[test]
    fn taken_temporary_names_are_skipped_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let taken = |n: usize| dir.path().join(format!(".finout-mock-credentials.{n}.tmp"));
        for n in 0..TEMP_ATTEMPTS {
            std::fs::write(taken(n), "mine").unwrap();
        }
        // Every name tried is taken: an error, and every file as it was.
        let mut n = 0;
        let next = || {
            n += 1;
            (n - 1).to_string()
        };
        let e = write_via(&path, &json(), next).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(!path.exists());
        let squatted = files(dir.path());
        assert_eq!(squatted.len(), TEMP_ATTEMPTS);
        assert!(squatted.iter().all(|(_, text)| text == "mine"));
        // The last name tried is free: written.
        std::fs::remove_file(taken(TEMP_ATTEMPTS - 1)).unwrap();
        let mut n = 0;
        let next = || {
            n += 1;
            (n - 1).to_string()
        };
        write_via(&path, &json(), next).unwrap();
        assert!(path.exists());
        assert_eq!(files(dir.path()).len(), TEMP_ATTEMPTS);
    }

    #[test]
    fn a_failed_write_removes_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file goes: the rename fails.
        let path = dir.path().join("creds.json");
        std::fs::create_dir(&path).unwrap();
        let squatter = dir.path().join(".finout-mock-credentials.0.tmp");
        std::fs::write(&squatter, "mine").unwrap();
        let mut n = 0;
        let next = || {
            n += 1;
            (n - 1).to_string()
        };
        write_via(&path, &json(), next).unwrap_err();
        assert_eq!(std::fs::read_to_string(&squatter).unwrap(), "mine");
        assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    }
}
