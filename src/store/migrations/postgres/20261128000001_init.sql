-- finout-auth schema (PostgreSQL). Ids are text (UUIDs, client ids); timestamps are
-- timestamptz (UTC); roles are JSON; a token keeps only the argon2id hash of its secret.
CREATE TABLE finout_auth_accounts (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE finout_auth_users (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES finout_auth_accounts (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    roles      TEXT NOT NULL,
    UNIQUE (account_id, email)
);

CREATE TABLE finout_auth_tokens (
    client_id    TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('api', 'personal')),
    account_id   TEXT NOT NULL REFERENCES finout_auth_accounts (id) ON DELETE CASCADE,
    user_id      TEXT REFERENCES finout_auth_users (id) ON DELETE CASCADE,
    description  TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    created_by   TEXT,
    last_used_at TIMESTAMPTZ,
    CHECK ((kind = 'api') = (user_id IS NULL))
);

CREATE INDEX finout_auth_tokens_account ON finout_auth_tokens (account_id);
CREATE INDEX finout_auth_tokens_user ON finout_auth_tokens (user_id);
