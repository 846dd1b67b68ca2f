//! Where scimdesk keeps things and how it is configured.
//!
//! Precedence, strongest first: command-line flags, environment variables, the config file,
//! built-in defaults. Directories come from the platform (`directories`), overridable with
//! `SCIMDESK_CONFIG` (the config directory) and `SCIMDESK_DATA_DIR` (the data directory).

use crate::domain::{Access, Grants};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Environment variable naming the config directory.
pub const CONFIG_DIR_ENV: &str = "SCIMDESK_CONFIG";
/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "SCIMDESK_DATA_DIR";
/// The config file's name inside the config directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The master key file's default name inside the config directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// The contents of `config.toml`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Store URL (`postgres://...` or `sqlite:...`).
    pub database_url: Option<String>,
    /// Log filter, e.g. `info` or `scimdesk=debug` (overridden by `RUST_LOG`).
    pub log_level: Option<String>,
    /// The operator name recorded in the audit log (default: the OS user).
    pub operator: Option<String>,
    /// Path of the master key file (default: `master.key` in the config directory).
    pub master_key_file: Option<PathBuf>,
    /// Provisioning engine tuning (`[engine]`, `[engine.health]`).
    pub engine: Option<crate::engine::EngineConfig>,
    /// Provisioning policy (`[policy.guard]`).
    pub policy: Option<PolicyConfig>,
    /// The terminal workbench (`[workbench]`: theme, keys).
    pub workbench: Option<crate::tui::WorkbenchConfig>,
    /// Local operators' access levels (`[access.operators.NAME]`).
    pub access: Option<AccessConfig>,
    /// The GraphQL management API (`[api]`).
    pub api: Option<ApiConfig>,
}

/// `[api]` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether authenticated API tokens may introspect the schema (unauthenticated requests
    /// never can). Default true.
    pub introspection: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            introspection: true,
        }
    }
}

/// `[access]` in config.toml: each local operator's level per organization, the same levels
/// API tokens carry (`domain::access`). Without `[access]` a local operator is `admin`; with
/// it, only the operators it lists have access, each to the organizations it names (`"*"`
/// for every other one).
///
/// ```toml
/// [access.operators.alice]
/// "*" = "admin"
/// [access.operators.oncall]
/// Riverside = "operate"
/// Lakeside = "read"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Operator name → organization name (or `*`) → level.
    pub operators: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Access>>,
}

impl AccessConfig {
    /// What `operator` is granted (nothing, when they are not listed).
    pub fn grants(&self, operator: &str) -> Grants {
        Grants::PerOrganization(self.operators.get(operator).cloned().unwrap_or_default())
    }
}

/// `[policy]` in config.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// How much access one mapping change may remove without `--force`.
    pub guard: crate::policy::impact::Guard,
}

/// Values given on the command line or in the environment, before defaults are applied.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config-dir` or `SCIMDESK_CONFIG`.
    pub config_dir: Option<PathBuf>,
    /// `--data-dir` or `SCIMDESK_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`, `SCIMDESK_DATABASE_URL` or `DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--operator` or `SCIMDESK_OPERATOR`.
    pub operator: Option<String>,
}

/// The resolved configuration every command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Holds `config.toml` and, by default, `master.key`.
    pub config_dir: PathBuf,
    /// Holds the SQLite database and the logs.
    pub data_dir: PathBuf,
    /// The store URL.
    pub database_url: String,
    /// Whether `database_url` is the built-in SQLite default.
    pub database_is_default: bool,
    /// Log filter from the file (RUST_LOG wins over it).
    pub log_level: String,
    /// Who the audit log says acted.
    pub operator: String,
    /// The master key file.
    pub master_key_file: PathBuf,
    /// Provisioning engine tuning.
    pub engine: crate::engine::EngineConfig,
    /// Provisioning policy.
    pub policy: PolicyConfig,
    /// The terminal workbench.
    pub workbench: crate::tui::WorkbenchConfig,
    /// Local operators' access levels; `None`: every local operator is admin.
    pub access: Option<AccessConfig>,
    /// The GraphQL management API.
    pub api: ApiConfig,
}

impl Config {
    /// The operator's levels: admin everywhere without `[access]`, else what it grants.
    pub fn operator_grants(&self) -> Grants {
        match &self.access {
            None => Grants::Everywhere(Access::Admin),
            Some(a) => a.grants(&self.operator),
        }
    }
}

/// Why configuration could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No home directory to derive default paths from.
    #[error("cannot find a home directory; set {CONFIG_DIR_ENV} and {DATA_DIR_ENV}")]
    NoHome,
    /// The config file is unreadable or invalid.
    #[error("config file {}: {}", .0.display(), .1)]
    File(PathBuf, String),
}

impl Config {
    /// Resolves the configuration from overrides, the config file and defaults.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        let dirs = directories::ProjectDirs::from("dev", "scimdesk", "scimdesk");
        let config_dir = match overrides.config_dir {
            Some(dir) => dir,
            None => dirs
                .as_ref()
                .ok_or(ConfigError::NoHome)?
                .config_dir()
                .to_path_buf(),
        };
        let data_dir = match overrides.data_dir {
            Some(dir) => dir,
            None => dirs
                .as_ref()
                .ok_or(ConfigError::NoHome)?
                .data_dir()
                .to_path_buf(),
        };
        let file = read_file_config(&config_dir.join(CONFIG_FILE))?;
        let (database_url, database_is_default) = match overrides.database_url.or(file.database_url)
        {
            Some(url) => (url, false),
            None => (default_database_url(&data_dir), true),
        };
        let operator = overrides.operator.or(file.operator).unwrap_or_else(os_user);
        let master_key_file = file
            .master_key_file
            .unwrap_or_else(|| config_dir.join(MASTER_KEY_FILE));
        Ok(Self {
            config_dir,
            data_dir,
            database_url,
            database_is_default,
            log_level: file.log_level.unwrap_or_else(|| "info".into()),
            operator,
            master_key_file,
            engine: file.engine.unwrap_or_default(),
            policy: file.policy.unwrap_or_default(),
            workbench: file.workbench.unwrap_or_default(),
            access: file.access,
            api: file.api.unwrap_or_default(),
        })
    }

    /// Where the daily log files go.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// The embedded default: an SQLite file in the data directory.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("scimdesk.db").display())
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| ConfigError::File(path.into(), e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(ConfigError::File(path.into(), e.to_string())),
    }
}

/// The operating-system user name, used as the operator when none is configured.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(dir: &Path) -> Overrides {
        Overrides {
            config_dir: Some(dir.join("cfg")),
            data_dir: Some(dir.join("data")),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_to_sqlite_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load(overrides(dir.path())).unwrap();
        assert!(cfg.database_is_default);
        assert_eq!(
            cfg.database_url,
            default_database_url(&dir.path().join("data"))
        );
        assert_eq!(
            cfg.master_key_file,
            dir.path().join("cfg").join(MASTER_KEY_FILE)
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
        std::fs::write(
            dir.path().join("cfg").join(CONFIG_FILE),
            "database_url = \"postgres://db/x\"\noperator = \"alice\"\n",
        )
        .unwrap();
        let cfg = Config::load(overrides(dir.path())).unwrap();
        assert_eq!(cfg.database_url, "postgres://db/x");
        assert_eq!(cfg.operator, "alice");
        let mut o = overrides(dir.path());
        o.database_url = Some("sqlite::memory:".into());
        o.operator = Some("bob".into());
        let cfg = Config::load(o).unwrap();
        assert_eq!(cfg.database_url, "sqlite::memory:");
        assert_eq!(cfg.operator, "bob");
    }

    #[test]
    fn bad_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cfg")).unwrap();
        std::fs::write(dir.path().join("cfg").join(CONFIG_FILE), "colour = 3\n").unwrap();
        let err = Config::load(overrides(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("config.toml") && err.contains("colour"),
            "{err}"
        );
    }
}
