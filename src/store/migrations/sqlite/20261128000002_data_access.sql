-- A user's data access (Finout: the views they may see): NULL for everything, else a JSON
-- array of ids. Existing users keep full access.
ALTER TABLE finout_auth_users ADD COLUMN data_access TEXT;
