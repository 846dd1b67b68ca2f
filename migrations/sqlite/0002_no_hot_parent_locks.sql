-- PostgreSQL's 0002 drops foreign keys whose parent rows every insert would lock (see there).
-- SQLite takes no row locks, so it keeps them; this migration keeps the version numbers aligned.
SELECT 1;
