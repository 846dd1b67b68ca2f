//! What the panes show: rows the loader reads from the store (paged, by indexed queries) and
//! hands to the state. The render path reads only these, never the store.

use crate::domain::*;
use crate::engine::HealthReport;
use crate::policy::impact::{Guard, Impact};
use uuid::Uuid;

/// An organization in the switcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRef {
    /// Its id.
    pub id: OrganizationId,
    /// Its name.
    pub name: String,
}

/// One connection with its health (targets) and the last half hour of traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    /// The connection.
    pub connection: Connection,
    /// Its health; `None` for sources, which the engine does not send to.
    pub health: Option<HealthReport>,
    /// A source scimdesk pulls from: its health, judged by its syncs.
    pub source: Option<crate::engine::health::SourceHealth>,
    /// Attempts per minute, oldest first (the sparkline).
    pub throughput: Vec<u64>,
    /// Failed attempts per minute, oldest first.
    pub errors: Vec<u64>,
}

/// An operation with the name of what it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRow {
    /// The operation.
    pub operation: Operation,
    /// A userName, group display name or role name, for people.
    pub subject: String,
}

/// A row of the Failed pane: an open exception or an operation that needs an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum FailedItem {
    /// An exception (unmapped group, conflict, unknown resource).
    Exception(PolicyException),
    /// A failed operation.
    Operation(OperationRow),
}

impl FailedItem {
    /// A stable key, so selection follows the item when rows move.
    pub fn key(&self) -> Uuid {
        match self {
            FailedItem::Exception(e) => e.id.0,
            FailedItem::Operation(o) => o.operation.id.0,
        }
    }
}

/// A mapping with the names people know its parts by.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    /// The mapping.
    pub mapping: RoleMapping,
    /// The role's name.
    pub role: String,
    /// The source connection's name, if the mapping is limited to one.
    pub source: Option<String>,
}

/// One page of a listing, with where it starts and whether more follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// The position of the first row in the whole listing.
    pub offset: u64,
    /// Whether rows follow the last one.
    pub more: bool,
    /// How many match in all, when counting is cheap.
    pub total: Option<u64>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            offset: 0,
            more: false,
            total: None,
        }
    }
}

/// Everything one load brings: the organizations, the current one's connections, and the
/// current pane's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Every organization, by name.
    pub organizations: Vec<OrgRef>,
    /// The organization the rows belong to.
    pub organization: Option<OrgRef>,
    /// Its connections.
    pub connections: Vec<ConnectionRow>,
    /// Its roles (the mapping editor offers them).
    pub roles: Vec<Role>,
    /// The pane's rows.
    pub body: PaneData,
    /// When it was read.
    pub at: Timestamp,
}

/// The rows of one pane.
#[derive(Debug, Clone, PartialEq)]
pub enum PaneData {
    /// The Connections pane needs only the connections.
    Connections,
    /// Unfinished operations.
    Queue(Page<OperationRow>),
    /// Exceptions and failed operations.
    Failed(Page<FailedItem>),
    /// The mapping table.
    Mappings(Vec<MappingRow>),
    /// Users.
    Users(Page<User>),
    /// Audit events, newest first.
    Audit(Page<AuditEvent>),
}

/// What an `enter` opens, once read.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// A connection: health and its recent attempts.
    Connection {
        /// The row it was opened from, re-read.
        row: Box<ConnectionRow>,
        /// Recent attempts, newest first, with the operation they belong to.
        attempts: Vec<(OperationRow, Attempt)>,
    },
    /// An operation with every attempt.
    Operation {
        /// The operation.
        row: OperationRow,
        /// Its attempts, in order.
        attempts: Vec<Attempt>,
    },
    /// An exception.
    Exception(PolicyException),
    /// A user: groups, roles, and status at each target with the operations concerning them.
    User(Box<UserDetail>),
    /// An audit event.
    Audit(AuditEvent),
}

/// A user as the Users detail shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDetail {
    /// The user.
    pub user: User,
    /// Their groups, by display name.
    pub groups: Vec<String>,
    /// Their roles, by name.
    pub roles: Vec<String>,
    /// Per target: its name and what it was last told (`None`: nothing yet).
    pub targets: Vec<(String, Option<TargetLink>)>,
    /// Operations concerning them, unfinished first, then the most recent finished.
    pub operations: Vec<OperationRow>,
}

/// A mapping change being prepared in the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingForm {
    /// The mapping changed (`None`: a new one).
    pub id: Option<RoleMappingId>,
    /// Remove the mapping instead.
    pub remove: bool,
    /// The group pattern.
    pub pattern: String,
    /// The role granted, by name (created if new).
    pub role: String,
    /// What the pattern is compared with.
    pub selector: GroupSelector,
    /// Whether the pattern is a glob.
    pub glob: bool,
    /// Only groups of this source.
    pub source: Option<ConnectionId>,
    /// The exception this change answers, if opened from one.
    pub from_exception: Option<ExceptionId>,
}

/// An impact preview waiting for the operator's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpactView {
    /// The change previewed.
    pub form: MappingForm,
    /// What it would do.
    pub impact: Impact,
    /// The guard's refusal, if it would refuse (applying then needs a second confirmation).
    pub guard_refusal: Option<String>,
    /// The guard in force.
    pub guard: Guard,
}
