-- Expired tokens are purged after a retention, the longest expired first. Timestamps are
-- RFC 3339 text whose fraction drops trailing zeros, so they do not sort as text: the store
-- compares this expression instead (the seconds, then the fraction padded to nanoseconds),
-- written exactly as `Backend::instant` writes it, so that its queries use the index.
CREATE INDEX finout_auth_tokens_expires_at ON finout_auth_tokens (
    (substr(expires_at, 1, 19) || substr(CASE WHEN substr(expires_at, 20, 1) = '.' THEN substr(expires_at, 21, length(expires_at) - 21) ELSE '' END || '000000000', 1, 9))
) WHERE expires_at IS NOT NULL;
