-- Pages of an organization's operations, newest first, by id (the API's cursors): each table
-- is read backwards from a cursor along one index, however deep the page.

CREATE INDEX operation_queue_org_id ON operation_queue (organization_id, id);
CREATE INDEX operation_history_org_id ON operation_history (organization_id, id);
