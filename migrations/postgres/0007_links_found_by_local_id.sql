-- Target links are found by what they link (the primary key: connection, resource type, local
-- id). Keep in step with ../sqlite/0007_links_found_by_local_id.sql.
--
-- No query looks a link up by its remote id, so this index only cost a write per link. Worse,
-- on PostgreSQL it was a plan the planner could take for "these local ids at this connection":
-- while a new connection's links were unknown to the statistics, it estimated one row and
-- scanned every link of the connection through this index, filtering by local id, for each
-- batch (seen in an onboarding wave: 3 ms per batch of 32 and growing with the wave, a third
-- of the database's time). Without it, the primary key is the only way in.
DROP INDEX target_links_remote;
