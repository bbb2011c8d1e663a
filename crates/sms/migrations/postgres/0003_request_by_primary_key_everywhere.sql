-- Text now compares byte by byte here too (migration 901), so a request's messages are a range of
-- the primary key as on SQLite (migration 2): the request filter reads that range
-- (store::request_condition) and this index, which every insert wrote at a random place (request
-- ids are random UUIDs), goes.
DROP INDEX sms_messages_by_request;
