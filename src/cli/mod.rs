//! The `scimdesk` command line: argument definitions and dispatch.
//!
//! Every command name and flag here is an interface scripts use; README.md lists them.

mod commands;
mod context;
mod error;
mod output;
mod secret_input;

pub use error::{CliError, CliResult, Exit};

use crate::config::{Config, Overrides};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A multi-tenant SCIM 2.0 provisioning engine and operations workbench.
#[derive(Debug, Parser)]
#[command(name = "scimdesk", version, about, propagate_version = true)]
pub struct Cli {
    /// Store URL: postgres://USER@HOST/DB or sqlite:PATH [default: SQLite file in the data dir].
    #[arg(
        long,
        global = true,
        env = "SCIMDESK_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The configuration directory (holds config.toml and master.key).
    #[arg(long, global = true, env = "SCIMDESK_CONFIG")]
    pub config_dir: Option<PathBuf>,
    /// The data directory (holds the SQLite database and logs).
    #[arg(long, global = true, env = "SCIMDESK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Who the audit log records as acting [default: config `operator`, else the OS user].
    #[arg(long, global = true, env = "SCIMDESK_OPERATOR")]
    pub operator: Option<String>,
    /// The organization to act in, by name or id.
    #[arg(long, global = true, env = "SCIMDESK_ORG")]
    pub org: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Workbench theme: default, dark, light, high-contrast, or a theme file's path
    /// [default: config `[workbench] theme`].
    #[arg(long, global = true, value_name = "NAME|PATH", env = "SCIMDESK_THEME")]
    pub theme: Option<String>,
    /// Open the workbench without the embedded sync workers (only watch; other processes
    /// deliver).
    #[arg(long)]
    pub no_workers: bool,
    /// What to do [default: the workbench in a terminal, else `status`].
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the store, the master key in use, and every organization with its connections.
    Status,
    /// Open the terminal workbench (what `scimdesk` alone does in a terminal).
    #[command(visible_alias = "ui")]
    Workbench {
        /// Only watch: do not run the embedded sync workers.
        #[arg(long)]
        no_workers: bool,
    },
    /// Manage organizations (tenants).
    #[command(subcommand, alias = "orgs")]
    Org(OrgCommand),
    /// Manage connections to identity sources and provisioning targets.
    #[command(subcommand, alias = "connections")]
    Connection(ConnectionCommand),
    /// Issue, list and revoke inbound SCIM and API tokens.
    #[command(subcommand, alias = "tokens")]
    Token(TokenCommand),
    /// Read the append-only audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Master key maintenance.
    #[command(subcommand)]
    Key(KeyCommand),
    /// SAML sources: replay a captured response, print our SP metadata.
    #[command(subcommand)]
    Saml(SamlCommand),
    /// Run the inbound SCIM server with the sync workers, /healthz, /readyz and /metrics.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "SCIMDESK_LISTEN")]
        listen: std::net::SocketAddr,
        /// Public base URL for `meta.location` (default: from the request's Host header).
        #[arg(long, env = "SCIMDESK_PUBLIC_URL")]
        public_url: Option<String>,
        /// Serve SCIM only; leave delivery to other processes.
        #[arg(long)]
        no_workers: bool,
    },
    /// Measure the engine on this machine (prints figures; see docs/performance.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect and steer queued provisioning operations.
    #[command(subcommand, alias = "operations")]
    Ops(OpsCommand),
    /// The demo: "Riverside Health" onboards nurses through real SCIM requests into two local
    /// applications (one flaky, one strict), on a temporary SQLite store unless
    /// --database-url is given.
    Demo {
        /// Run the story without the workbench and print a summary (otherwise the workbench
        /// opens on it while it plays).
        #[arg(long)]
        headless: bool,
        /// Pace multiplier (1 pushes about 20 nurses a second).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Nurses in the onboarding wave.
        #[arg(long, default_value_t = 200)]
        nurses: usize,
    },
    /// Group-to-role mappings: list, set, remove, and preview their impact.
    #[command(subcommand, alias = "mappings")]
    Mapping(MappingCommand),
    /// Exceptions for people to resolve: unmapped groups, conflicts, unknown resources.
    #[command(subcommand, alias = "exception")]
    Exceptions(ExceptionsCommand),
    /// The organization's users: their source, groups, roles and status at each target.
    #[command(subcommand, alias = "user")]
    Users(UsersCommand),
    /// The organization's groups: their source, path, members, roles and status at targets.
    #[command(subcommand, alias = "group")]
    Groups(GroupsCommand),
}

/// Which users or groups `users list` and `groups list` show.
#[derive(Debug, Clone, Args)]
pub struct DirectoryFilter {
    /// Only those whose names contain this (any case).
    #[arg(long)]
    pub search: Option<String>,
    /// Only those of this source connection (name or id).
    #[arg(long)]
    pub source: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `scimdesk users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users by userName, with their roles and status at each target (`--search`
    /// matches the userName, display name or an e-mail).
    #[command(alias = "ls")]
    List(DirectoryFilter),
    /// One user, whole: attributes, groups, roles, status at each target.
    Show {
        /// The user's id or userName.
        user: String,
    },
}

/// `scimdesk groups ...`
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List groups by path, with their member counts and roles (`--search` matches the
    /// name or path).
    #[command(alias = "ls")]
    List(DirectoryFilter),
    /// One group, whole: path, source, members, roles, status at each target.
    Show {
        /// The group's id, name or path.
        group: String,
    },
}

/// Which groups a mapping matches and the role it grants.
#[derive(Debug, Clone, Args)]
pub struct MappingRule {
    /// The group pattern: a display name, group id or path (see --by); a glob with --glob.
    #[arg(long, value_name = "PATTERN")]
    pub group: Option<String>,
    /// The role granted (created if it does not exist).
    #[arg(long)]
    pub role: Option<String>,
    /// What the pattern is compared with: display_name, id or path.
    #[arg(long, default_value = "display_name")]
    pub by: String,
    /// The pattern is a glob (`*` any run, `?` one character); case is ignored either way.
    #[arg(long)]
    pub glob: bool,
    /// Only groups from this source connection (name or id).
    #[arg(long)]
    pub source: Option<String>,
}

/// `scimdesk mapping ...`
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// List the organization's mappings with their roles.
    #[command(alias = "ls")]
    List,
    /// Add a mapping (or change one with --id), with the operations it causes; refused by the
    /// guard when it would remove too much access, unless --force.
    Set {
        /// The rule.
        #[command(flatten)]
        rule: MappingRule,
        /// Change this mapping instead of adding one.
        #[arg(long)]
        id: Option<String>,
        /// Apply even when the guard refuses.
        #[arg(long)]
        force: bool,
        /// Only show the impact (same as `mapping impact`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a mapping, with the operations it causes (guarded like `set`).
    #[command(alias = "rm")]
    Remove {
        /// The mapping id.
        id: String,
        /// Apply even when the guard refuses.
        #[arg(long)]
        force: bool,
        /// Only show the impact.
        #[arg(long)]
        dry_run: bool,
    },
    /// Preview a mapping change: who gains and loses which role, and the target operations.
    Impact {
        /// The rule to add (or, with --id, the new content of a mapping).
        #[command(flatten)]
        rule: MappingRule,
        /// With the rule: change this mapping. Alone with --remove: remove it.
        #[arg(long)]
        id: Option<String>,
        /// Preview removing the mapping given with --id.
        #[arg(long, requires = "id")]
        remove: bool,
        /// Users and operations listed at most (the JSON output has all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `scimdesk exceptions ...`
#[derive(Debug, Subcommand)]
pub enum ExceptionsCommand {
    /// List exceptions, newest first.
    #[command(alias = "ls")]
    List {
        /// open (default), resolved, dismissed or all.
        #[arg(long, default_value = "open")]
        state: String,
        /// unmapped_group, conflict or unknown_at_target.
        #[arg(long)]
        kind: Option<String>,
        /// Only this target connection (name or id).
        #[arg(long)]
        connection: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Settle an exception: map an unmapped group to a role, link a conflict to the target's
    /// resource, or dismiss it with a reason.
    Resolve {
        /// The exception id.
        id: String,
        /// Unmapped group: map it (by its display name, from its source) to this role.
        #[arg(long, value_name = "ROLE", conflicts_with_all = ["link", "dismiss"])]
        map_to: Option<String>,
        /// Conflict: link the local resource to this resource id at the target, and retry.
        #[arg(long, value_name = "REMOTE_ID", conflicts_with = "dismiss")]
        link: Option<String>,
        /// Sync guard: apply the stopped sync anyway (the source really lost those users).
        #[arg(long, conflicts_with_all = ["map_to", "link", "dismiss"])]
        apply: bool,
        /// Set it aside (needs --reason).
        #[arg(long, requires = "reason")]
        dismiss: bool,
        /// Why it is dismissed.
        #[arg(long)]
        reason: Option<String>,
        /// With --map-to: apply even when the guard refuses.
        #[arg(long)]
        force: bool,
    },
}

/// `scimdesk connection set ...`: a target's policy and delivery settings.
#[derive(Debug, Clone, Args)]
pub struct ConnectionSet {
    /// Connection name or id.
    pub name: String,
    /// Roles the target is bound to, comma-separated (empty to unbind all).
    #[arg(long, value_name = "ROLE,...")]
    pub roles: Option<String>,
    /// Which users it receives: `all`, `roles` (holders of a bound role; the default), or a
    /// SCIM filter over the user, its roles and groups.
    #[arg(long, value_name = "all|roles|FILTER")]
    pub user_scope: Option<String>,
    /// How roles reach it: groups, roles or entitlements.
    #[arg(long)]
    pub role_delivery: Option<String>,
    /// Also mirror the source's own groups: true or false.
    #[arg(long)]
    pub source_groups: Option<bool>,
    /// Attribute override PATH=RULE, RULE being drop, from:PATH, const:VALUE or
    /// template:TEXT (repeatable).
    #[arg(long = "attribute", value_name = "PATH=RULE")]
    pub attributes: Vec<String>,
    /// Remove the override of this attribute (repeatable).
    #[arg(long = "unset-attribute", value_name = "PATH")]
    pub unset_attributes: Vec<String>,
    /// A value templates may use, NAME=VALUE (repeatable).
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// What reconciliation does with resources unknown here: flag, adopt or remove.
    #[arg(long)]
    pub unknown_resources: Option<String>,
    /// What leaving (or deletion) does: delete or suspend.
    #[arg(long)]
    pub delete_mode: Option<String>,
    /// Full reconciliation every this many seconds (0: never).
    #[arg(long, value_name = "SECS")]
    pub reconcile_every: Option<u64>,
    /// Any other setting, KEY=VALUE (VALUE as JSON when it parses; `null` removes the key).
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// A SAML source: read the IdP's metadata again from its URL (or from --metadata-file /
    /// --metadata-url) and trust the signing certificates it lists now.
    #[arg(long)]
    pub refresh_metadata: bool,
    /// A SAML source: the IdP's metadata from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "metadata_url")]
    pub metadata_file: Option<PathBuf>,
    /// A SAML source: the IdP's metadata from this URL (kept for later refreshes).
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
}

/// `scimdesk org ...`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization with its own data key.
    Create {
        /// Its name, unique (ignoring case).
        name: String,
    },
    /// List organizations.
    #[command(alias = "ls")]
    List,
}

/// Where a secret is read from. Secrets are never taken from the command line.
#[derive(Debug, Clone, Args)]
pub struct SecretSource {
    /// Read the secret from this file (`-` for standard input).
    #[arg(long, value_name = "PATH", conflicts_with = "secret_stdin")]
    pub secret_file: Option<PathBuf>,
    /// Read the secret from standard input.
    #[arg(long)]
    pub secret_stdin: bool,
}

/// `scimdesk connection ...`
#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Add a connection; its secret (if any) is read from a file or stdin and stored encrypted.
    Add(Box<ConnectionAdd>),
    /// List the organization's connections (secrets masked).
    #[command(alias = "ls")]
    List,
    /// Show one connection (secret masked).
    Show {
        /// Connection name or id.
        name: String,
    },
    /// Remove a connection with its links, queued operations, mappings and tokens.
    #[command(alias = "rm")]
    Remove {
        /// Connection name or id.
        name: String,
    },
    /// Stop delivering to a target (operations keep queueing until resumed).
    Pause {
        /// Connection name or id.
        name: String,
        /// Why (recorded in the audit log).
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
    },
    /// Resume delivering to a paused or quarantined target.
    Resume {
        /// Connection name or id.
        name: String,
    },
    /// Health of one target, or of every target: state, error rates, queue, latency.
    Health {
        /// Connection name or id (default: every target).
        name: Option<String>,
    },
    /// A target: send now what waits (back-offs end, a quarantined target is probed); with
    /// --full, reconcile it in full (compare with what it holds and repair drift). A source
    /// (scim_source): read it and apply what changed, behind its deletion guard.
    Sync {
        /// Connection name or id.
        name: String,
        /// A target: full reconciliation (page through its /Users and /Groups). A source:
        /// read it whole (what a scim_source sync always does today).
        #[arg(long)]
        full: bool,
        /// Report only, change nothing (a target: with --full).
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a target's policy: bound roles, scope, role delivery, attribute mapping,
    /// unknown-resource policy, reconcile schedule.
    Set(Box<ConnectionSet>),
    /// Replace a connection's secret.
    RotateSecret {
        /// Connection name or id.
        name: String,
        /// Where the new secret comes from.
        #[command(flatten)]
        secret: SecretSource,
    },
}

/// `scimdesk bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// An onboarding wave through inbound SCIM -> engine -> a local SCIM target, against a
    /// direct push of the same requests, then a paced run for latency.
    Wave {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Users in the wave.
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Groups (members spread over them).
        #[arg(long, default_value_t = 50)]
        groups: usize,
        /// Requests the identity provider sends at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Offered rate of the paced run (users per second).
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Users in the paced run.
        #[arg(long, default_value_t = 2_000)]
        paced_users: usize,
        /// Target connection settings as JSON (e.g. '{"concurrency": 16}').
        #[arg(long, default_value = r#"{"concurrency": 16}"#)]
        settings: String,
        /// Latency the local target adds to every answer, as a remote application would (ms).
        #[arg(long, default_value_t = 0)]
        target_latency_ms: u64,
        /// The target application: in memory (fast, so the figures are scimdesk's), or
        /// scimdesk's own inbound server on the same store.
        #[arg(long, value_enum, default_value_t = crate::stand_ins::bench::WaveTarget::Memory)]
        target: crate::stand_ins::bench::WaveTarget,
    },
    /// A mapping change's impact preview and a full reconciliation (with nothing to do) over
    /// a large directory.
    Policy {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Users in the directory (each in three groups).
        #[arg(long, default_value_t = 50_000)]
        users: usize,
        /// Groups in the directory.
        #[arg(long, default_value_t = 2_000)]
        groups: usize,
    },
    /// The GraphQL API over HTTP: `connections` with health over many targets, pages of a
    /// large queue, a mutation's effect at a subscriber, and a sustained read rate.
    Api {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Target connections.
        #[arg(long, default_value_t = 200)]
        connections: usize,
        /// Operations stored over them.
        #[arg(long, default_value_t = 1_000_000)]
        operations: u64,
        /// Clients of the sustained run.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Offered rate of the sustained run (requests per second).
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        /// Seconds of the sustained run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Drain a large queue against a target that acknowledges at once.
    Drain {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Operations to queue and drain.
        #[arg(long, default_value_t = 1_000_000)]
        operations: u64,
        /// Operations in flight at once.
        #[arg(long, default_value_t = 128)]
        concurrency: u32,
        /// Seconds per reported interval.
        #[arg(long, default_value_t = 10)]
        interval: u64,
    },
    /// A source scimdesk pulls from: a generated SCIM server (users, groups nested three
    /// deep) synced in full, again with nothing changed, then incrementally one change at a
    /// time while the engine delivers to a local application.
    Sync {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Users at the source.
        #[arg(long, default_value_t = 50_000)]
        users: usize,
        /// Groups at the source.
        #[arg(long, default_value_t = 2_000)]
        groups: usize,
        /// Incremental changes timed.
        #[arg(long, default_value_t = 20)]
        changes: usize,
    },
    /// SAML logins: signed assertions (RSA-2048, SHA-256) verified and ingested as the ACS
    /// does, on PostgreSQL or SQLite: every user's first login, a closed loop for the highest
    /// rate, then a paced run for the latency at `--rate`.
    Saml {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Distinct users.
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Logins in the closed loop.
        #[arg(long, default_value_t = 10_000)]
        logins: usize,
        /// Logins in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Offered logins per second in the paced run.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Seconds of the paced run.
        #[arg(long, default_value_t = 10)]
        paced_secs: u64,
    },
    /// The workbench over a large store: frame render time, key press to screen, start-up to
    /// first frame, and its memory (measured in a process of its own).
    Workbench {
        /// Run on a temporary schema in this PostgreSQL database (default: a temporary SQLite file).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// Users in the store.
        #[arg(long, default_value_t = 50_000)]
        users: usize,
        /// Operations queued (over two targets).
        #[arg(long, default_value_t = 100_000)]
        operations: u64,
    },
    /// The measuring half of `bench workbench`, run by it in a second process.
    #[command(hide = true)]
    WorkbenchProbe {
        /// The PostgreSQL database.
        #[arg(long, requires = "schema")]
        postgres: Option<String>,
        /// The schema in it.
        #[arg(long)]
        schema: Option<String>,
        /// Or a SQLite file.
        #[arg(long, conflicts_with = "postgres")]
        sqlite: Option<PathBuf>,
    },
}

/// `scimdesk ops ...`
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List operations: unfinished ones in queue order, or finished ones with --state.
    #[command(alias = "ls")]
    List {
        /// Only this target connection (name or id).
        #[arg(long)]
        connection: Option<String>,
        /// pending, in_flight, retry_wait, failed, succeeded or skipped.
        #[arg(long)]
        state: Option<String>,
        /// create, update, suspend, delete, add_members or remove_members.
        #[arg(long)]
        action: Option<String>,
        /// Only operations on this user or group id.
        #[arg(long)]
        resource: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Skip this many first.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one operation with every attempt.
    Show {
        /// The operation id.
        id: String,
    },
    /// Put a failed (or waiting) operation back in the queue, due now; with --all, every
    /// failed operation matching the filters.
    Retry {
        /// The operation id (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every matching operation.
        #[arg(long)]
        all: bool,
        /// With --all: only this target connection.
        #[arg(long, requires = "all")]
        connection: Option<String>,
        /// With --all: failed (default) or retry_wait.
        #[arg(long, requires = "all")]
        state: Option<String>,
        /// With --all: only this action.
        #[arg(long, requires = "all")]
        action: Option<String>,
    },
    /// Set an operation aside (it will not be sent); a reason is required.
    Skip {
        /// The operation id.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// `scimdesk connection add`
#[derive(Debug, Args)]
pub struct ConnectionAdd {
    /// Name, unique in the organization (ignoring case).
    pub name: String,
    /// scim_target, scim_inbound, scim_source, keycloak, zitadel or saml.
    #[arg(long)]
    pub kind: String,
    /// Base URL of the remote API (required for targets and pulled sources).
    #[arg(long)]
    pub base_url: Option<String>,
    /// none, bearer or oauth2_client_credentials [default: by kind].
    #[arg(long)]
    pub auth: Option<String>,
    /// OAuth 2.0 client id (stored in settings).
    #[arg(long)]
    pub client_id: Option<String>,
    /// OIDC issuer URL for token endpoint discovery (stored in settings).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Extra setting KEY=VALUE (VALUE parsed as JSON if it is JSON); repeatable.
    #[arg(long = "setting", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Where the secret comes from.
    #[command(flatten)]
    pub secret: SecretSource,
    /// A SAML source's settings (`--kind saml`).
    #[command(flatten)]
    pub saml: SamlArgs,
}

/// What `connection add --kind saml` takes: the IdP's metadata, our SP's entityID, and which
/// assertion attributes carry what.
#[derive(Debug, Args, Default)]
pub struct SamlArgs {
    /// saml: the IdP's metadata (its entityID and signing certificates) from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "metadata_url")]
    pub metadata_file: Option<PathBuf>,
    /// saml: the IdP's metadata from this URL (`connection set --refresh-metadata` reads it
    /// again for a certificate rollover).
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
    /// saml: our SP's entityID (assertions' Audience must name it).
    #[arg(long, value_name = "ID")]
    pub sp_entity_id: Option<String>,
    /// saml: the attribute whose values are the user's groups (e.g. `groups`, `memberOf`,
    /// `http://schemas.microsoft.com/ws/2008/06/identity/claims/groups`).
    #[arg(long, value_name = "ATTR")]
    pub groups_attribute: Option<String>,
    /// saml: the attribute carrying the e-mail address.
    #[arg(long, value_name = "ATTR")]
    pub email_attribute: Option<String>,
    /// saml: the attribute carrying the given name.
    #[arg(long, value_name = "ATTR")]
    pub given_name_attribute: Option<String>,
    /// saml: the attribute carrying the family name.
    #[arg(long, value_name = "ATTR")]
    pub family_name_attribute: Option<String>,
    /// saml: where the userName comes from: `nameid` (the default) or an attribute's name.
    #[arg(long, value_name = "nameid|ATTR")]
    pub username_from: Option<String>,
    /// saml: how far apart the clocks may be, in seconds [default: 120].
    #[arg(long, value_name = "N")]
    pub clock_skew_secs: Option<u64>,
    /// saml: the base URL this scimdesk is reached at; the ACS is
    /// `{URL}/saml/{connection id}/acs` [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// saml: the exact ACS URL, when a proxy makes it other than the one --public-url gives.
    #[arg(long, value_name = "URL")]
    pub acs_url: Option<String>,
    /// saml: a URL prefix a RelayState may redirect to after a login (repeatable).
    #[arg(long, value_name = "URL")]
    pub relay_state_allow: Vec<String>,
    /// saml: our private key (PEM) for assertions the IdP encrypts; sealed like any secret.
    #[arg(long, value_name = "PATH")]
    pub sp_key_file: Option<PathBuf>,
    /// saml: our certificate (PEM) for that key, published in our SP metadata.
    #[arg(long, value_name = "PATH")]
    pub sp_cert_file: Option<PathBuf>,
}

/// `scimdesk saml ...`
#[derive(Debug, Subcommand)]
pub enum SamlCommand {
    /// Replay a captured SAML response through the same verification and ingestion as the
    /// ACS (refused ones are recorded in health as well).
    Ingest {
        /// The SAML connection (name or id).
        #[arg(long)]
        connection: String,
        /// The response: its XML, or the base64 `SAMLResponse` value (`-` for stdin).
        file: PathBuf,
    },
    /// Print our SP metadata for a SAML connection (what `GET /saml/{id}/metadata` serves).
    Metadata {
        /// The SAML connection (name or id).
        #[arg(long)]
        connection: String,
    },
}

/// `scimdesk token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token. Its text is printed once and never again.
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// The inbound SCIM connection it authenticates (makes it a SCIM token).
        #[arg(long)]
        connection: Option<String>,
        /// read, operate or admin for an API token (see docs/access.md), or scim for an
        /// inbound SCIM token [default: scim with --connection, else read].
        #[arg(long)]
        scope: Option<String>,
        /// Refuse the token after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their text).
    #[command(alias = "ls")]
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token id (from `token list`).
        id: String,
    },
}

/// `scimdesk audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    #[command(alias = "ls")]
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only events by this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Only actions starting with this (e.g. `connection.`).
        #[arg(long)]
        action: Option<String>,
        /// Only events about this subject id.
        #[arg(long)]
        subject: Option<String>,
        /// Only events at or after this time: RFC 3339, a date, or an age (15m, 2h, 3d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only events before this time (same forms as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
}

/// `scimdesk db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (also done automatically) and list the applied ones.
    Migrate,
}

/// `scimdesk key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Re-wrap every organization's data key under a new master key.
    Rotate {
        /// Where to write the new key when the current one comes from SCIMDESK_MASTER_KEY.
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    if let Err(e) = color_eyre::install() {
        eprintln!("warning: cannot install the error report hook: {e}");
    }
    let cli = Cli::parse();
    let overrides = Overrides {
        config_dir: cli.config_dir.clone(),
        data_dir: cli.data_dir.clone(),
        database_url: cli
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty())),
        operator: cli.operator.clone(),
    };
    let config = match Config::load(overrides) {
        Ok(c) => c,
        Err(e) => return report(e.into()),
    };
    let _log_guard = crate::logging::init(&config.log_dir(), &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(CliError::new(Exit::Internal, format!("cannot start: {e}"))),
    };
    match runtime.block_on(commands::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

fn report(e: CliError) -> ExitCode {
    tracing::error!(exit = e.exit as u8, "{}", e.message);
    eprintln!("error: {}", e.message);
    e.exit_code()
}
