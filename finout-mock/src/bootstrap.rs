//! The first start on a store without the mock's account: the account, an Admin user and a
//! personal token for them, written in one transaction, and the credentials handed over
//! once (prose or JSON on stdout, and optionally a file only the owner can read).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use finout_auth::{
    AdminError, ClientId, Role, SecretKey, StoreError, TokenAdmin, UserId,
    crypto::{CredentialGenerator, SecretHasher, UuidV4Generator},
    model::{Account, TokenKind, TokenRecord, User},
    store::Batch,
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
/// the account exists: `None` then (nothing is written). A kill at any point leaves either
/// nothing or all three.
pub(crate) async fn bootstrap(admin: &TokenAdmin) -> Result<Option<Created>, AdminError> {
    if admin.store().get_account(MOCK_ACCOUNT).await?.is_some() {
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
    let batch = Batch::new()
        .account(Account {
            id: MOCK_ACCOUNT,
            name: "finout-mock".into(),
        })
        .user(user.clone())
        .token(token);
    match admin.insert_batch(batch).await {
        Ok(()) => Ok(Some(Created {
            user,
            client_id,
            secret,
        })),
        // Another process bootstrapped the same store meanwhile: its credentials stand.
        Err(AdminError::Store(StoreError::Conflict(_)))
            if admin.store().get_account(MOCK_ACCOUNT).await?.is_some() =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Created {
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

/// Write `json` to `path`, whole or not at all: into a new file beside it (readable by the
/// owner only, on unix), then renamed over it.
pub(crate) fn write_credentials(path: &Path, json: &serde_json::Value) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(json.to_string().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
