-- Nothing to change: the primary key compares by the database's collation, in which a key range is
-- not a prefix (unlike SQLite's bytewise order), so sms_messages_by_request stays and the request
-- filter is plain equality (store::request_condition).
SELECT 1;
