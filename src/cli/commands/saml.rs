//! `scimdesk saml ingest|metadata`: a captured SAML response replayed through the ACS's own
//! verification and ingestion, and our SP metadata printed.

use super::connection::find;
use crate::cli::context::Context;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::{SamlCommand, output};
use crate::domain::Action;
use crate::engine::saml::{self, LoginError};
use crate::engine::saml::{MAX_POST_VALUE, MAX_RESPONSE_BYTES};
use std::io::Read;

pub async fn run(ctx: &Context, org: Option<&str>, cmd: SamlCommand, json: bool) -> CliResult {
    match cmd {
        SamlCommand::Metadata { connection } => {
            let org = ctx.organization_for(org, Action::View).await?;
            let c = find(ctx, &org, &connection).await?;
            let xml = saml::sp_metadata(&c).map_err(login_error)?;
            print!("{xml}");
            Ok(())
        }
        SamlCommand::Ingest { connection, file } => {
            let org = ctx.organization_for(org, Action::Sync).await?;
            let c = find(ctx, &org, &connection).await?;
            let text = read_capture(&file)?;
            // The XML itself, or the HTTP-POST binding's base64 `SAMLResponse`.
            let xml = if text.trim_start().starts_with('<') {
                text
            } else {
                match saml::decode_post(text.trim()) {
                    Ok(xml) => xml,
                    Err(refusal) => {
                        return Err(login_error(
                            saml::record_refusal(ctx.store.as_ref(), &c, refusal).await,
                        ));
                    }
                }
            };
            let summary = saml::ingest(ctx.store.as_ref(), &c, &xml)
                .await
                .map_err(login_error)?;
            if json {
                return output::json(&summary);
            }
            println!(
                "accepted: {} {} ({}); {} groups joined, {} left, {} new groups of {:?}",
                summary.user_name,
                summary.user,
                summary.user_id,
                summary.joined,
                summary.left,
                summary.groups_created,
                summary.connection
            );
            Ok(())
        }
    }
}

/// Reads a captured response (`-`: stdin), refusing one past the ACS's own limit.
fn read_capture(file: &std::path::Path) -> CliResult<String> {
    let limit = MAX_POST_VALUE as u64;
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().take(limit + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::invalid(format!("cannot read {}: {e}", file.display())))?;
    if bytes.len() as u64 > limit {
        return Err(CliError::new(
            Exit::Refused,
            format!(
                "assertion refused: the response is larger than {MAX_RESPONSE_BYTES} bytes (too_large)"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|_| CliError::invalid("the response is not UTF-8"))
}

/// A login failure as the CLI reports it: a refusal exits 7, a userName conflict 4.
fn login_error(e: LoginError) -> CliError {
    let exit = match &e {
        LoginError::Refused(_) => Exit::Refused,
        LoginError::Conflict(_) => Exit::Conflict,
        LoginError::Unavailable(_) => Exit::Unavailable,
        LoginError::Settings { .. } => Exit::Config,
        LoginError::Store(_) => match e {
            LoginError::Store(s) => return s.into(),
            _ => Exit::Internal,
        },
    };
    CliError::new(exit, e.to_string())
}
