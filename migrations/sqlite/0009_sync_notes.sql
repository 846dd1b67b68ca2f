-- A sync run's note: why an incremental sync ran in full instead (the source's change feed is
-- off or refused), shown in connection health. Keep in step with ../postgres/0009_sync_notes.sql.

ALTER TABLE sync_runs ADD COLUMN note TEXT;
