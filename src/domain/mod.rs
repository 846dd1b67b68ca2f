//! Plain domain types shared by every layer. No I/O happens here.
//!
//! Rows derive `sqlx::FromRow` so both stores can decode them directly; that is a derive, not a
//! dependency on a database.

pub mod access;
mod audit;
mod connection;
mod connection_stats;
mod exception;
pub mod fanout;
mod group;
mod ids;
mod operation;
mod organization;
mod repairs;
mod role;
pub mod saml;
mod sync;
mod target_link;
mod target_settings;
pub(crate) mod text_enum;
mod timestamp;
mod token;
mod user;
pub mod validate;

pub use access::{Access, Action, Denied, Grants, OperatorRefused};
pub use audit::{Actor, ActorKind, AuditEvent, AuditFilter};
pub use connection::{
    AuthMethod, Connection, ConnectionKind, ConnectionState, ConnectionUpdate, NewConnection,
};
pub use connection_stats::{ConnectionStats, LATENCY_BOUNDS_MS, LatencyHistogram};
pub use exception::{
    ExceptionFilter, ExceptionKind, ExceptionState, NewException, PolicyException, ReconcileRun,
    unmapped_group_key,
};
pub use fanout::{DirectoryChange, Fanout, FanoutRule, PolicyFacts, UnmappedGroup, Work};
pub use group::{Group, GroupDraft};
pub use ids::{
    ApiTokenId, AuditEventId, ConnectionId, ExceptionId, GroupId, OperationId, OrganizationId,
    ReconcileRunId, RoleId, RoleMappingId, SyncRunId, UserId,
};
pub use operation::{
    Attempt, Disposition, LinkUpdate, NewOperation, Operation, OperationAction, OperationState,
    Outcome, QueueCounts,
};
pub use organization::Organization;
pub use repairs::Repairs;
pub use role::{
    GroupSelector, MappingCommit, MappingWrite, MatchMode, Role, RoleMapping, RoleMappingDraft,
};
pub use saml::{LoginBatch, LoginUser, LoginView, SamlSettings, VerifiedLogin};
pub use sync::{
    GroupScope, SourceChanges, SourceGroup, SourceSnapshot, SourceUser, SyncBatch, SyncCounts,
    SyncGuard, SyncRun, sync_guard_key,
};
pub use target_link::{ResourceType, TargetLink};
pub use target_settings::{
    AttributeRule, ClientAuth, CreateLookup, DeleteMode, RoleDelivery, SettingsError,
    TargetSettings, UnknownResources, UpdateMode, UserScope,
};
pub use timestamp::Timestamp;
pub use token::{ApiToken, NewApiToken, TokenScope};
pub use user::{Email, LifecycleState, User, UserDraft};
pub use validate::InvalidInput;

/// JSON columns of domain rows (sqlx's wrapper, which both stores encode and decode), so that
/// layers that must not name the database can still build those rows.
pub use sqlx::types::Json;
