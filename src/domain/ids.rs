//! Typed identifiers, so an organization id can never be passed where a connection id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The smallest identifier made at `at` (to the millisecond): a bound for
            /// listings by time, since a UUIDv7 starts with its creation time.
            pub fn lowest_at(at: super::Timestamp) -> Self {
                let ms = u64::try_from(at.unix_micros().max(0) / 1000).unwrap_or(0);
                let mut bytes = [0u8; 16];
                bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
                bytes[6] = 0x70;
                bytes[8] = 0x80;
                Self(Uuid::from_bytes(bytes))
            }

            /// The raw bytes, used as associated data in sealed secrets.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant; every tenant-owned row carries one.
    OrganizationId
);
id_type!(
    /// Identifies a connection (an identity source or a provisioning target).
    ConnectionId
);
id_type!(
    /// Identifies a local user.
    UserId
);
id_type!(
    /// Identifies a local group.
    GroupId
);
id_type!(
    /// Identifies a governed local role.
    RoleId
);
id_type!(
    /// Identifies a group-to-role mapping rule.
    RoleMappingId
);
id_type!(
    /// Identifies an exception that an operator resolves.
    ExceptionId
);
id_type!(
    /// Identifies one reconciliation run of a target.
    ReconcileRunId
);
id_type!(
    /// Identifies one sync run of a source.
    SyncRunId
);
id_type!(
    /// Identifies a provisioning operation.
    OperationId
);
id_type!(
    /// Identifies an audit event.
    AuditEventId
);
id_type!(
    /// Identifies an API or inbound SCIM token.
    ApiTokenId
);
