//! Column lists and SQL fragments that several statements share, as macros so they can be
//! spliced into `concat!` at compile time: one spelling of each table's columns for the
//! aggregates' SQL (`store/sql/`) and for what each backend writes its own way
//! (`store/postgres/`, `store/sqlite/`).

/// `WHERE` clause for INSERT ... SELECT: the organization (`$org`, `$2` unless given) exists
/// and, when given, the source connection (`$conn`) belongs to it. Checks references without
/// the row locks a foreign key would take on PostgreSQL (see migrations/postgres/0002).
macro_rules! parents_exist {
    ($conn:literal) => {
        parents_exist!("$2", $conn)
    };
    ($org:literal, $conn:literal) => {
        concat!(
            " WHERE EXISTS (SELECT 1 FROM organizations WHERE id = ",
            $org,
            ") AND (",
            $conn,
            " IS NULL OR EXISTS (SELECT 1 FROM connections WHERE organization_id = ",
            $org,
            " AND id = ",
            $conn,
            "))"
        )
    };
}

macro_rules! organization_cols {
    () => {
        "id, name, created_at"
    };
}
macro_rules! connection_cols {
    () => {
        "id, organization_id, name, kind, base_url, auth_method, (secret_sealed IS NOT NULL) AS has_secret, settings, state, created_at, updated_at"
    };
}
macro_rules! user_cols {
    () => {
        "id, organization_id, user_name, external_id, display_name, given_name, family_name, emails, active, lifecycle_state, source_connection_id, attributes, version, created_at, updated_at"
    };
}
macro_rules! group_cols {
    () => {
        "id, organization_id, display_name, external_id, source_connection_id, attributes, version, created_at, updated_at"
    };
}
macro_rules! role_cols {
    () => {
        "id, organization_id, name, description, created_at"
    };
}
macro_rules! mapping_cols {
    () => {
        "id, organization_id, source_connection_id, selector, match_mode, pattern, role_id, created_at"
    };
}
macro_rules! link_cols {
    () => {
        "organization_id, connection_id, resource_type, local_id, remote_id, remote_etag, content_hash, synced_at, last_sent"
    };
}
/// An unfinished operation as [`Operation`](crate::domain::Operation) reads it.
macro_rules! queue_cols {
    () => {
        "id, seq, organization_id, connection_id, resource_type, resource_id, action, payload, state, attempts, budget_from, not_before, lease_until, last_status, last_error, NULL AS note, created_at, updated_at"
    };
}
/// A finished operation as [`Operation`](crate::domain::Operation) reads it.
macro_rules! history_cols {
    () => {
        "id, CAST(0 AS BIGINT) AS seq, organization_id, connection_id, resource_type, resource_id, action, payload, state, attempts, CAST(0 AS INTEGER) AS budget_from, finished_at AS not_before, NULL AS lease_until, last_status, last_error, note, created_at, finished_at AS updated_at"
    };
}
/// The columns of `operation_history` that moving an operation there fills.
macro_rules! history_insert_cols {
    () => {
        "id, organization_id, connection_id, resource_type, resource_id, action, payload, state, attempts, last_status, last_error, note, created_at, finished_at"
    };
}
macro_rules! exception_cols {
    () => {
        "id, organization_id, kind, subject_key, connection_id, subject, summary, details, state, resolution, resolved_by, created_at, resolved_at"
    };
}
macro_rules! sync_run_cols {
    () => {
        "id, organization_id, connection_id, started_at, finished_at, full_sync, dry_run, actor, counts, error, note"
    };
}

macro_rules! reconcile_cols {
    () => {
        "id, organization_id, connection_id, started_at, finished_at, dry_run, actor, counts, error"
    };
}
macro_rules! attempt_cols {
    () => {
        "operation_id, attempt_no, organization_id, connection_id, started_at, duration_ms, http_status, error, request_excerpt, response_excerpt"
    };
}
macro_rules! stats_cols {
    () => {
        "connection_id, minute, process_id, organization_id, attempts, failures, latency_buckets, last_attempt_at, last_success_at"
    };
}
macro_rules! audit_cols {
    () => {
        "id, organization_id, occurred_at, actor_kind, actor, action, subject_type, subject_id, details"
    };
}
macro_rules! token_cols {
    () => {
        "id, organization_id, connection_id, name, scope, access, created_at, expires_at, revoked_at"
    };
}

/// The start of every insert into the queue: the columns a new operation sets.
macro_rules! insert_operation {
    () => {
        "INSERT INTO operation_queue (id, organization_id, connection_id, resource_type, resource_id, action, payload, state, attempts, not_before, created_at, updated_at) "
    };
}

/// Which waiting operations absorb a new update of the same resource at the same target (see
/// `enqueue_one`): creates and updates that no worker has taken or tried yet.
macro_rules! coalescible {
    () => {
        "action IN ('create', 'update') AND state = 'pending' AND attempts = 0 AND lease_owner IS NULL"
    };
}

/// The start of every insert of users, up to the values: one column list for the create
/// transaction, both backends' batched creates and the benchmark's bulk load.
macro_rules! insert_users {
    () => {
        concat!(
            "INSERT INTO users (id, organization_id, user_name, user_name_key, external_id, display_name, ",
            "given_name, family_name, emails, active, lifecycle_state, source_connection_id, attributes, ",
            "version, created_at, updated_at) "
        )
    };
}

/// Appends ` IN ($a, $b, ...)` to a `QueryBuilder`, binding `$bind` for each `$x` of `$items`
/// (callers chunk the items, to stay under the backends' limits on bound values).
macro_rules! push_in_list {
    ($q:ident, $items:expr, |$x:pat_param| $bind:expr) => {{
        $q.push(" IN (");
        let mut list = $q.separated(", ");
        for $x in $items {
            list.push_bind($bind);
        }
        $q.push(")");
    }};
}

/// Binds translated SCIM filter values onto a query, in placeholder order.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                crate::store::scim_query::Bind::Str(v) => q.bind(v.clone()),
                crate::store::scim_query::Bind::Uuid(v) => q.bind(*v),
                crate::store::scim_query::Bind::Bool(v) => q.bind(*v),
                crate::store::scim_query::Bind::F64(v) => q.bind(*v),
                crate::store::scim_query::Bind::Time(v) => q.bind(*v),
            };
        }
        q
    }};
}
