-- Every index is written on every version stored; these earned less than they cost.
-- A contact's versions are listed from the primary key (id, digest) and sorted: a contact has few.
DROP INDEX contact_versions_in_order;
