//! What the state asks the runner to do (reads and engine commands), and what comes back.

use super::Pane;
use crate::domain::*;
use crate::store::OperationFilter;
use crate::tui::data::*;

/// Something to read for the current pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadRequest {
    /// The organization (`None`: the first one).
    pub organization: Option<OrganizationId>,
    /// The pane.
    pub pane: Pane,
    /// Its filter text.
    pub filter: String,
    /// The first row wanted.
    pub offset: u64,
    /// How many rows.
    pub limit: u32,
}

/// Something to open in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailRequest {
    /// A connection.
    Connection(ConnectionId),
    /// An operation.
    Operation(OperationId),
    /// An exception.
    Exception(ExceptionId),
    /// A user.
    User(UserId),
}

/// An engine command (or a read that prepares one), carried out by the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Retry one operation.
    Retry(OperationId),
    /// Retry every operation matching the filter.
    RetryAll(OperationFilter),
    /// Skip one operation.
    Skip(OperationId, String),
    /// Dismiss an exception.
    Dismiss(ExceptionId, String),
    /// Apply a sync the deletion guard stopped, anyway.
    ApplySync(ExceptionId),
    /// Pause a connection.
    Pause(ConnectionId, String),
    /// Resume a connection.
    Resume(ConnectionId),
    /// Send what waits now.
    SyncNow(ConnectionId),
    /// Sync a source now (read it and apply what changed).
    SyncSource(ConnectionId),
    /// Reconcile in full.
    Reconcile(ConnectionId),
    /// Open the editor prefilled for a failed operation's user (reads their groups).
    RemapOperation(OperationId),
    /// Compute the impact of a mapping change.
    Preview(MappingForm),
    /// Make a mapping change (`force` past the guard).
    Apply(MappingForm, bool),
}

impl Command {
    /// The action the command takes, as the one authorization model names it: the
    /// workbench refuses what the operator's `[access]` level does not allow, as the CLI and
    /// the API do.
    pub fn action(&self) -> crate::domain::Action {
        use crate::domain::Action;
        match self {
            Command::Retry(_) | Command::RetryAll(_) => Action::Retry,
            Command::Skip(..) => Action::Skip,
            Command::Dismiss(..) | Command::ApplySync(_) => Action::Resolve,
            Command::Pause(..) | Command::Resume(_) => Action::Pause,
            Command::SyncNow(_) | Command::SyncSource(_) | Command::Reconcile(_) => Action::Sync,
            Command::RemapOperation(_) | Command::Preview(_) => Action::View,
            Command::Apply(..) => Action::ManageMappings,
        }
    }
}

/// What a key asks the runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read the current pane again.
    Load(LoadRequest),
    /// Read something to show in detail.
    Detail(DetailRequest),
    /// Run a command.
    Run(Command),
    /// Leave.
    Quit,
}

/// What a command answers: how it ended (for the message line), or the next view it opens.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It worked; what happened.
    Done(String),
    /// It did not; why.
    Failed(String),
    /// A mapping change's impact, to confirm.
    Impact(Box<ImpactView>),
    /// A form to edit (from [`Command::RemapOperation`]).
    Edit(Box<MappingForm>),
}
