-- Nothing to change: migration 2 dropped the request index on SQLite; this one drops it on
-- PostgreSQL, whose text now compares byte by byte too (migration 901).
SELECT 1;
