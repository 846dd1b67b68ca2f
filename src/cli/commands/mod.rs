//! One module per command group; each takes the opened [`Context`] and the parsed arguments.

mod audit;
mod bench;
mod connection;
mod db;
mod demo;
mod directory;
mod exceptions;
mod key;
mod mapping;
mod ops;
mod org;
mod saml;
mod serve;
mod status;
mod token;
mod workbench;

use super::context::Context;
use super::error::CliResult;
use super::{Cli, Command};
use crate::config::Config;

/// Opens the store and runs the command.
pub async fn run(cli: Cli, config: Config) -> CliResult {
    // Benchmarks make their own temporary stores; they never touch the configured one.
    if let Some(Command::Bench(c)) = cli.command {
        return bench::run(c, cli.json).await;
    }
    if let Some(Command::Demo {
        headless,
        speed,
        nurses,
    }) = cli.command
    {
        let view = workbench::View {
            theme: cli.theme.clone(),
            workers: true,
        };
        return demo::run(config, headless, speed, nurses, cli.json, view).await;
    }
    // `scimdesk` alone opens the workbench in a terminal; piped or scripted, it shows status.
    let command = match cli.command {
        Some(c) => c,
        None if workbench::interactive() => Command::Workbench {
            no_workers: cli.no_workers,
        },
        None => Command::Status,
    };
    let ctx = Context::open(config).await?;
    let org = cli.org.as_deref();
    let json = cli.json;
    match command {
        Command::Status => status::run(&ctx, json).await,
        Command::Workbench { no_workers } => {
            let view = workbench::View {
                theme: cli.theme.clone(),
                workers: !(no_workers || cli.no_workers),
            };
            workbench::run(&ctx, org, view).await
        }
        Command::Org(c) => org::run(&ctx, c, json).await,
        Command::Connection(c) => connection::run(&ctx, org, c, json).await,
        Command::Token(c) => token::run(&ctx, org, c, json).await,
        Command::Audit(c) => audit::run(&ctx, org, c, json).await,
        Command::Db(c) => db::run(&ctx, c, json).await,
        Command::Key(c) => key::run(&ctx, c, json).await,
        Command::Serve {
            listen,
            public_url,
            no_workers,
        } => serve::run(&ctx, listen, public_url, !no_workers).await,
        Command::Ops(c) => ops::run(&ctx, org, c, json).await,
        Command::Mapping(c) => mapping::run(&ctx, org, c, json).await,
        Command::Exceptions(c) => exceptions::run(&ctx, org, c, json).await,
        Command::Saml(c) => saml::run(&ctx, org, c, json).await,
        Command::Users(c) => directory::users(&ctx, org, c, json).await,
        Command::Groups(c) => directory::groups(&ctx, org, c, json).await,
        Command::Bench(_) | Command::Demo { .. } => Ok(()),
    }
}
