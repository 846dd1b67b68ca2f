//! `scimdesk key rotate`: re-wrap every data key under a new master key.
//!
//! With a key file: the new key is staged beside it (`master.key.next`), the database switches
//! in one transaction, then the staged file replaces the old one. A crash in between is finished
//! by the next command that opens the store (see `Context::open`).

use crate::cli::KeyCommand;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::output;
use crate::crypto::{self, MasterKey, MasterKeySource};

pub async fn run(ctx: &Context, cmd: KeyCommand, json: bool) -> CliResult {
    let KeyCommand::Rotate { new_key_file } = cmd;
    let io = |what: &str, e: std::io::Error| CliError::new(Exit::Config, format!("{what}: {e}"));
    let new = MasterKey::generate()?;
    let new_id = new.id();
    let (count, key_path) = match (&ctx.key_source, new_key_file) {
        (MasterKeySource::File(path), None) => {
            let pending = crypto::pending_key_path(path);
            if pending.exists() {
                // Context::open found the database not using it: a rotation died before commit.
                std::fs::remove_file(&pending).map_err(|e| io("removing a stale staged key", e))?;
            }
            crypto::write_key_file(&pending, &new)?;
            let count = ctx.store.rotate_master_key(&ctx.actor, new).await?;
            std::fs::rename(&pending, path).map_err(|e| io("installing the new key file", e))?;
            (count, path.clone())
        }
        (MasterKeySource::File(_), Some(_)) => {
            return Err(CliError::invalid(
                "--new-key-file is for keys given in SCIMDESK_MASTER_KEY; the key file is rotated in place",
            ));
        }
        (MasterKeySource::Env, Some(path)) => {
            crypto::write_key_file(&path, &new)?;
            let count = ctx.store.rotate_master_key(&ctx.actor, new).await?;
            (count, path)
        }
        (MasterKeySource::Env, None) => {
            return Err(CliError::invalid(
                "the master key comes from SCIMDESK_MASTER_KEY: pass --new-key-file PATH to receive the new key, then set SCIMDESK_MASTER_KEY from it",
            ));
        }
    };
    if json {
        return output::json(&serde_json::json!({
            "organizations": count,
            "master_key_id": new_id,
            "key_file": key_path,
        }));
    }
    println!(
        "re-wrapped the data keys of {count} organization(s); master key is now {new_id} ({})",
        key_path.display()
    );
    if ctx.key_source == MasterKeySource::Env {
        println!(
            "set SCIMDESK_MASTER_KEY to the contents of {} before the next run",
            key_path.display()
        );
    }
    Ok(())
}
