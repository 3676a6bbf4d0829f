-- Rotation and disabling: the hash of the secret the last rotation replaced and until when it
-- is still accepted (both NULL when there is none), and when the token was disabled (NULL
-- while it is enabled).
ALTER TABLE finout_auth_tokens ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE finout_auth_tokens ADD COLUMN previous_valid_until TEXT;
ALTER TABLE finout_auth_tokens ADD COLUMN disabled_at TEXT;
