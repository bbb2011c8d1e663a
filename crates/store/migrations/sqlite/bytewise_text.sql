-- Nothing to do: SQLite's default collation, BINARY, already compares text byte by byte (PostgreSQL
-- takes its default from the database's locale; its version of this migration sets "C").
SELECT 1;
