-- Text compares byte by byte, as it does on SQLite (whose default collation is BINARY): keys, list
-- order and UPPER() no longer depend on the locale the database was created with, and every index
-- on a text column compares with memcmp instead of the locale's strcoll (which, with copying both
-- values for it, was a sixth of the server's time writing voice calls under a C.UTF-8 database).
--
-- Every text column of this service's tables, one ALTER TABLE per table. No table is rewritten; the
-- indexes on those columns are rebuilt, so on a large database this takes a while and locks each
-- table meanwhile. A later migration states COLLATE "C" on any text column it adds
-- (tests/it/migrations.rs checks it).
DO $$
DECLARE
    target record;
BEGIN
    FOR target IN
        SELECT columns.table_name,
               string_agg(format('ALTER COLUMN %I TYPE text COLLATE "C"', columns.column_name), ', ') AS changes
        FROM information_schema.columns AS columns
        JOIN information_schema.tables AS tables USING (table_schema, table_name)
        WHERE columns.table_schema = current_schema()
          AND tables.table_type = 'BASE TABLE'
          AND columns.table_name <> '_sqlx_migrations'
          AND columns.data_type = 'text'
          AND columns.collation_name IS DISTINCT FROM 'C'
        GROUP BY columns.table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', target.table_name, target.changes);
    END LOOP;
END
$$;
