//! A login's plan, pure: a verified assertion is an incremental sync of one user. The user half
//! is [`plan_users`], the plan every source's sync uses (so a login creates, updates,
//! reactivates or leaves alone exactly as a sync of the same user would, and a userName that
//! another source owns is refused the same way); the group half replaces the user's
//! memberships *from this source* with the asserted groups, leaving every other source's alone.

use super::sync::{StoredUser, plan_users};
use crate::domain::{
    ConnectionId, GroupId, LoginUser, LoginView, SyncCounts, SyncGuard, UserId, VerifiedLogin,
    validate,
};
use std::collections::HashSet;

/// What one login writes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginPlan {
    /// The user's write.
    pub user: LoginUser,
    /// The asserted groups the user is not named in yet (by the IdP's value).
    pub join: Vec<String>,
    /// The source's groups the user is named in but no longer asserted.
    pub leave: Vec<GroupId>,
    /// What the login changes, as a sync run counts it.
    pub counts: SyncCounts,
}

/// Why a login cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginConflict {
    /// The userName belongs to a user another source owns.
    #[error("the userName {0:?} belongs to a user of another source; the login changes nothing")]
    OwnedElsewhere(String),
}

/// Plans the login of `source` that `login` describes, against what the store holds
/// (`view`) and which asserted groups the source already has (`known`).
pub fn plan_login(
    source: ConnectionId,
    login: &VerifiedLogin,
    view: &LoginView,
    known: &[(GroupId, String)],
) -> Result<LoginPlan, LoginConflict> {
    let local: Vec<StoredUser> = view.users.iter().map(StoredUser::of).collect();
    // Nobody is gone in a login, so the deletion guard has nothing to count.
    let planned = plan_users(
        source,
        std::slice::from_ref(&login.user),
        Some(&[]),
        &local,
        SyncGuard::default(),
        true,
    )
    .unwrap_or_default();
    if !planned.conflicts.is_empty() {
        return Err(LoginConflict::OwnedElsewhere(login.user.user_name.clone()));
    }
    let mut counts = planned.counts;
    let user = if let Some(draft) = planned.create.into_iter().next() {
        LoginUser::Create(UserId::new(), draft)
    } else if let Some((id, draft)) = planned.update.into_iter().next() {
        LoginUser::Update(id, draft)
    } else {
        let ext = login.user.external_id.as_str();
        let key = validate::user_name_key(&login.user.user_name);
        let mine = local
            .iter()
            .find(|u| {
                u.source_connection_id == Some(source) && u.external_id.as_deref() == Some(ext)
            })
            .or_else(|| {
                local.iter().find(|u| {
                    validate::user_name_key(&u.user_name) == key
                        && u.source_connection_id.is_none_or(|s| s == source)
                })
            });
        match mine {
            Some(u) => LoginUser::Keep(u.id),
            // plan_users leaves a user out only as unchanged or a conflict, both handled.
            None => return Err(LoginConflict::OwnedElsewhere(login.user.user_name.clone())),
        }
    };
    // A user just created is named in nothing yet; a user taken over from another userName
    // match keeps the memberships the view found for them.
    let current: &[(GroupId, String)] = match user {
        LoginUser::Create(..) => &[],
        _ => &view.groups,
    };
    let asserted: HashSet<&str> = login.groups.iter().map(String::as_str).collect();
    let named: HashSet<&str> = current.iter().map(|(_, e)| e.as_str()).collect();
    let mut join = Vec::new();
    for g in &login.groups {
        if !named.contains(g.as_str()) && !join.contains(g) {
            join.push(g.clone());
        }
    }
    let leave: Vec<GroupId> = current
        .iter()
        .filter(|(_, e)| !asserted.contains(e.as_str()))
        .map(|(id, _)| *id)
        .collect();
    let known: HashSet<&str> = known.iter().map(|(_, e)| e.as_str()).collect();
    counts.source_groups = asserted.len() as u64;
    counts.groups_created = join.iter().filter(|g| !known.contains(g.as_str())).count() as u64;
    counts.memberships_added = join.len() as u64;
    counts.memberships_removed = leave.len() as u64;
    Ok(LoginPlan {
        user,
        join,
        leave,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Json, LifecycleState, OrganizationId, SourceUser, Timestamp, User};

    fn login(groups: &[&str]) -> VerifiedLogin {
        VerifiedLogin {
            assertion_id: "_a".into(),
            expires_at: Timestamp::now(),
            user: SourceUser {
                external_id: "nurse@example.org".into(),
                user_name: "nurse@example.org".into(),
                display_name: None,
                given_name: None,
                family_name: None,
                emails: vec![],
                active: true,
                attributes: serde_json::json!({}),
            },
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn stored(source: Option<ConnectionId>, active: bool) -> User {
        let now = Timestamp::now();
        User {
            id: UserId::new(),
            organization_id: OrganizationId::new(),
            user_name: "nurse@example.org".into(),
            external_id: Some("nurse@example.org".into()),
            display_name: None,
            given_name: None,
            family_name: None,
            emails: Json(vec![]),
            active,
            lifecycle_state: if active {
                LifecycleState::Active
            } else {
                LifecycleState::Suspended
            },
            source_connection_id: source,
            attributes: Json(serde_json::json!({})),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_first_login_creates_the_user_and_joins_every_asserted_group() {
        let source = ConnectionId::new();
        let icu = GroupId::new();
        let plan = plan_login(
            source,
            &login(&["ICU", "Ward", "ICU"]),
            &LoginView::default(),
            &[(icu, "ICU".into())],
        )
        .unwrap();
        assert!(matches!(plan.user, LoginUser::Create(..)));
        assert_eq!(plan.join, vec!["ICU".to_string(), "Ward".to_string()]);
        assert!(plan.leave.is_empty());
        assert_eq!(plan.counts.created, 1);
        assert_eq!(plan.counts.groups_created, 1);
    }

    #[test]
    fn a_later_login_keeps_the_user_and_replaces_only_this_sources_groups() {
        let source = ConnectionId::new();
        let user = stored(Some(source), true);
        let (icu, ward) = (GroupId::new(), GroupId::new());
        let view = LoginView {
            users: vec![user.clone()],
            groups: vec![(icu, "ICU".into()), (ward, "Ward".into())],
        };
        let plan = plan_login(source, &login(&["ICU"]), &view, &[(icu, "ICU".into())]).unwrap();
        assert_eq!(plan.user, LoginUser::Keep(user.id));
        assert!(plan.join.is_empty());
        assert_eq!(plan.leave, vec![ward]);
        assert_eq!(plan.counts.memberships_removed, 1);
    }

    #[test]
    fn a_suspended_user_who_signs_in_is_reactivated() {
        let source = ConnectionId::new();
        let user = stored(Some(source), false);
        let view = LoginView {
            users: vec![user.clone()],
            groups: vec![],
        };
        let plan = plan_login(source, &login(&[]), &view, &[]).unwrap();
        assert!(matches!(plan.user, LoginUser::Update(id, ref d) if id == user.id && d.active));
        assert_eq!(plan.counts.reactivated, 1);
    }

    #[test]
    fn a_user_name_another_source_owns_is_refused() {
        let source = ConnectionId::new();
        let other = stored(Some(ConnectionId::new()), true);
        let view = LoginView {
            users: vec![other],
            groups: vec![],
        };
        assert!(matches!(
            plan_login(source, &login(&["ICU"]), &view, &[]),
            Err(LoginConflict::OwnedElsewhere(_))
        ));
    }
}
