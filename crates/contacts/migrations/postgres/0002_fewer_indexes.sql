-- Every index is written on every version stored (PostgreSQL writes a new entry in each index for
-- every updated row); these earned less than they cost.
-- A contact's versions are listed from the primary key (id, digest) and sorted: a contact has few.
DROP INDEX contact_versions_in_order;
-- One index answers both an identity (equality, newest first) and an identity prefix (LIKE 'abc%',
-- which needs text_pattern_ops whatever the database collation); text_pattern_ops has equality too.
DROP INDEX contacts_by_identity;
DROP INDEX contacts_by_identity_prefix;
CREATE INDEX contacts_by_identity ON contacts (identity_key text_pattern_ops, listed_at);
