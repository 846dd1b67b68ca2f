//! `scimdesk` in a terminal (and `scimdesk workbench`), and `scimdesk demo` with the workbench
//! open on the story.

use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::config::Config;
use crate::domain::Actor;
use crate::engine::Engine;
use crate::stand_ins::demo::{Demo, DemoOptions};
use crate::store::{Backend, redact_url};
use crate::tui::keymap::Keymap;
use crate::tui::runner::{self, Session};
use crate::tui::state::Workers;
use crate::tui::theme::Theme;
use std::io::IsTerminal as _;
use std::sync::Arc;

/// How the workbench is asked for on the command line.
#[derive(Debug, Clone)]
pub struct View {
    /// `--theme`.
    pub theme: Option<String>,
    /// Whether the embedded sync workers run.
    pub workers: bool,
}

/// Whether a person is at a terminal (stdin and stdout both are one).
pub fn interactive() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

fn need_terminal() -> CliResult {
    if interactive() {
        Ok(())
    } else {
        Err(CliError::invalid(
            "the workbench needs a terminal; in scripts use the commands (`scimdesk status`, `scimdesk ops list`, …) or `scimdesk demo --headless`",
        ))
    }
}

/// The theme (`--theme`, else config, else `default`) and the keys (config overrides), checked
/// before the terminal is taken over so a mistake is a clear message.
fn look(config: &Config, flag: Option<&str>) -> CliResult<(Theme, Keymap)> {
    let name = flag
        .or(config.workbench.theme.as_deref())
        .unwrap_or("default");
    let theme = Theme::load(name, Theme::no_color_from_env())
        .map_err(|e| CliError::new(Exit::Config, e.to_string()))?;
    let keymap = Keymap::with_overrides(&config.workbench.keys)
        .map_err(|e| CliError::new(Exit::Config, e.to_string()))?;
    Ok((theme, keymap))
}

/// The store as the status bar names it: the backend and the file or host/database.
fn store_label(url: &str) -> String {
    let safe = redact_url(url);
    match Backend::of_url(url) {
        Ok(Backend::Sqlite) => {
            let path = safe.trim_start_matches("sqlite:").trim_start_matches("//");
            let file = path
                .split('?')
                .next()
                .and_then(|p| std::path::Path::new(p).file_name())
                .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned());
            format!("sqlite {file}")
        }
        Ok(Backend::Postgres) => match url::Url::parse(&safe) {
            Ok(u) => format!(
                "postgres {}{}",
                u.host_str().unwrap_or("localhost"),
                u.path()
            ),
            Err(_) => "postgres".into(),
        },
        Err(_) => safe,
    }
}

/// Opens the workbench on the configured store.
pub async fn run(ctx: &Context, org: Option<&str>, view: View) -> CliResult {
    need_terminal()?;
    let (theme, keymap) = look(&ctx.config, view.theme.as_deref())?;
    let organization = match org {
        Some(_) => Some(
            ctx.organization_for(org, crate::domain::Action::View)
                .await?
                .id,
        ),
        None => None,
    };
    let engine = Arc::new(Engine::new(ctx.store.clone(), ctx.config.engine.clone()));
    if view.workers {
        engine.start();
    } else {
        engine.start_watching();
    }
    let result = runner::run(Session {
        store: ctx.store.clone(),
        engine: engine.clone(),
        workers: if view.workers {
            Workers::Running
        } else {
            Workers::Off
        },
        actor: ctx.actor.clone(),
        guard: ctx.config.policy.guard,
        theme,
        keymap,
        store_label: store_label(&ctx.config.database_url),
        organization,
        grants: ctx.config.operator_grants(),
    })
    .await;
    engine.shutdown().await;
    result.map_err(|e| CliError::new(Exit::Internal, e.to_string()))
}

/// `scimdesk demo`: sets the scene, plays the story in the background and opens the workbench
/// on it; quitting stops the story, the applications and the engine (and removes the
/// temporary store).
pub async fn demo(config: Config, options: DemoOptions, view: View) -> CliResult {
    need_terminal()?;
    let (theme, keymap) = look(&config, view.theme.as_deref())?;
    let fail = |e: crate::stand_ins::StandInError| {
        CliError::new(Exit::Internal, format!("the demo failed: {e}"))
    };
    let (store, temp, label) = if config.database_is_default {
        let temp = crate::stand_ins::bench::BenchStore::open(None).await?;
        (
            temp.store.clone() as Arc<dyn crate::store::Store>,
            Some(temp),
            "sqlite (temporary demo)".to_string(),
        )
    } else {
        let ctx = Context::open(config.clone()).await?;
        (ctx.store.clone(), None, store_label(&config.database_url))
    };
    let demo = Arc::new(
        Demo::start(store.clone(), view.workers)
            .await
            .map_err(fail)?,
    );
    let player = {
        let demo = demo.clone();
        tokio::spawn(async move {
            if let Err(e) = demo.play(&options).await {
                tracing::warn!("the demo story stopped: {e}");
            }
        })
    };
    let result = runner::run(Session {
        store,
        engine: demo.engine.clone(),
        workers: Workers::Running,
        actor: Actor::operator(config.operator.clone()),
        guard: config.policy.guard,
        theme,
        keymap,
        store_label: label,
        organization: Some(demo.organization),
        grants: config.operator_grants(),
    })
    .await;
    player.abort();
    let _ = player.await;
    if let Ok(demo) = Arc::try_unwrap(demo) {
        demo.stop().await;
    }
    if let Some(temp) = temp {
        temp.remove().await;
    }
    result.map_err(|e| CliError::new(Exit::Internal, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_labels_name_the_file_or_host_and_hide_passwords() {
        assert_eq!(
            store_label("sqlite:///home/a/.local/share/scimdesk/scimdesk.db?mode=rwc"),
            "sqlite scimdesk.db"
        );
        assert_eq!(
            store_label("postgres://u:secret@db.internal:5432/prod"),
            "postgres db.internal/prod"
        );
    }
}
