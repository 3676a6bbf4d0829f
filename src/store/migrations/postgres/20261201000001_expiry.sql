-- Expired tokens are purged after a retention, the longest expired first: the index serves
-- that search (and the oldest-expired-first purge that makes room for a new token).
CREATE INDEX finout_auth_tokens_expires_at ON finout_auth_tokens (expires_at)
    WHERE expires_at IS NOT NULL;
