-- Lineage: the client id of the token whose request issued this one (NULL when issued by the
-- system). Deleting a token deletes the tokens it issued, directly or not; the index serves
-- that walk.
ALTER TABLE finout_auth_tokens ADD COLUMN issued_by TEXT;
CREATE INDEX finout_auth_tokens_issued_by ON finout_auth_tokens (issued_by);
