//! The contract between the store and policy's fan-out: what a change of the directory causes
//! at the targets. The store reads the organization's policy ([`PolicyFacts`]) inside the
//! change's transaction, hands it with the change ([`DirectoryChange`]) to a [`FanoutRule`],
//! and carries out the [`Fanout`] it gets back in the same transaction, so a change and the
//! work it causes commit together.
//!
//! The rule itself is pure policy (`policy::fanout::decide`). The store must not depend on
//! policy, so the rule is handed to it when it is opened; these types are the plain data both
//! sides share.

use super::{
    ConnectionId, Group, GroupId, NewException, NewOperation, OperationAction, RoleId, RoleMapping,
    TargetSettings, UserId,
};
use std::collections::BTreeMap;

/// The organization's policy as one change's transaction reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyFacts {
    /// Every group-to-role mapping.
    pub mappings: Vec<RoleMapping>,
    /// The names of the roles those mappings grant (a target binds roles by name).
    pub role_names: BTreeMap<RoleId, String>,
    /// Every SCIM target with its settings (unreadable settings read as the defaults here; the
    /// worker reports them).
    pub targets: Vec<(ConnectionId, TargetSettings)>,
}

/// A change of the directory whose consequences at targets policy decides.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryChange<'a> {
    /// A group was created, replaced or deleted, or its membership changed.
    GroupChanged {
        /// The group as it is now (as it was, for a deletion).
        group: &'a Group,
        /// The group before the change, when what mappings select a group by changed (see
        /// [`Group::selectors_differ`]): the roles it granted then may be taken away.
        before: Option<&'a Group>,
        /// The operation on the group itself, for targets that mirror the source's groups.
        action: OperationAction,
        /// That operation's payload (e.g. the members added).
        payload: serde_json::Value,
        /// The users whose roles may have changed: the members added and removed, or every
        /// member when the group's selectors changed.
        users: &'a [UserId],
    },
    /// A user is leaving (deprovisioned or deleted); these are the groups they were in.
    UserLeaving {
        /// Their groups.
        groups: &'a [Group],
    },
    /// An operator put users' operations at a target back in the queue; these are the groups
    /// those users are in.
    UsersRetried {
        /// The target.
        connection: ConnectionId,
        /// Their groups.
        groups: &'a [Group],
    },
}

/// One piece of queue work a change causes, in the order it is to be queued.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Queue one operation (a waiting update of the same resource absorbs it).
    Enqueue(NewOperation),
    /// Queue an update of each of these users at one target (they are re-checked there).
    UpdateUsers {
        /// The target.
        connection: ConnectionId,
        /// The users, distinct.
        users: Vec<UserId>,
    },
}

/// What becomes of a group's unmapped-group exception.
#[derive(Debug, Clone, PartialEq)]
pub enum UnmappedGroup {
    /// Settle the open one, if any, saying why.
    Settle {
        /// Its subject key.
        key: String,
        /// The resolution recorded.
        why: String,
    },
    /// Raise this one if the group has members (no mapping covers it); otherwise settle the
    /// open one, saying `otherwise`. Whether it has members is read only then.
    RaiseIfPopulated {
        /// The group.
        group: GroupId,
        /// The exception to raise.
        exception: NewException,
        /// The resolution recorded when it has no members.
        otherwise: String,
    },
}

/// What a change causes, for the store to carry out in the change's transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fanout {
    /// Queue work, in order.
    pub work: Vec<Work>,
    /// The group's unmapped-group exception, for a group change.
    pub unmapped: Option<UnmappedGroup>,
}

/// Decides what a change causes; pure (the store calls it inside its transaction).
pub type FanoutRule = fn(&PolicyFacts, &DirectoryChange<'_>) -> Fanout;

/// A rule that causes nothing, for tests of the store's own mechanics.
pub fn no_fanout(_: &PolicyFacts, _: &DirectoryChange<'_>) -> Fanout {
    Fanout::default()
}
