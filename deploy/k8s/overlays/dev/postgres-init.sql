-- Runs once, when the data directory is created: one database per service.
CREATE DATABASE switchboard_sms;
CREATE DATABASE switchboard_chat;
CREATE DATABASE switchboard_voice;
CREATE DATABASE switchboard_interact;
CREATE DATABASE switchboard_contacts;
