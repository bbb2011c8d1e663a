-- A message's request id is its id up to a final ":<recipient index>" (or the whole id), and SQLite
-- compares text bytewise, so a request's messages are a range of the primary key: the request filter
-- reads that range (store::request_condition) instead of an index of its own, which every insert
-- wrote at a random place (request ids are random UUIDs).
DROP INDEX sms_messages_by_request;
