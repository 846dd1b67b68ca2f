//! Reading a secret from a file or standard input — never from the command line, where it
//! would land in shell history and `ps` output.

use super::SecretSource;
use super::error::{CliError, CliResult};
use crate::crypto::Secret;
use std::io::{IsTerminal as _, Read as _};
use zeroize::Zeroizing;

/// The longest secret accepted, in bytes.
const MAX_SECRET_BYTES: usize = 64 * 1024;

impl SecretSource {
    /// Whether a secret was asked for.
    pub fn is_given(&self) -> bool {
        self.secret_stdin || self.secret_file.is_some()
    }

    /// Reads the secret, if one was asked for; trailing line breaks are dropped.
    pub fn read(&self) -> CliResult<Option<Secret>> {
        let raw = match &self.secret_file {
            Some(path) if path.as_os_str() != "-" => {
                let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    CliError::invalid(format!("cannot read secret file {}: {e}", path.display()))
                })?);
                if bytes.len() > MAX_SECRET_BYTES {
                    return Err(CliError::invalid(format!(
                        "secret file {} is larger than {MAX_SECRET_BYTES} bytes",
                        path.display()
                    )));
                }
                bytes
            }
            Some(_) => read_stdin()?,
            None if self.secret_stdin => read_stdin()?,
            None => return Ok(None),
        };
        let text = std::str::from_utf8(&raw)
            .map_err(|_| CliError::invalid("the secret is not valid UTF-8"))?
            .trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(CliError::invalid("the secret is empty"));
        }
        Ok(Some(Secret::new(text)))
    }
}

fn read_stdin() -> CliResult<Zeroizing<Vec<u8>>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::invalid(
            "refusing to read a secret typed at the terminal (it would echo); pipe it in, e.g. `pass show okta | scimdesk ... --secret-stdin`, or use --secret-file PATH",
        ));
    }
    let mut buf = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_SECRET_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::invalid(format!("cannot read the secret from stdin: {e}")))?;
    if buf.len() > MAX_SECRET_BYTES {
        return Err(CliError::invalid(format!(
            "the secret on stdin is larger than {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(buf)
}
