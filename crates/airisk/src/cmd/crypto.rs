//! `airisk crypto`: encrypt, decrypt and rewrap values from stdin to stdout, one value or one per
//! line, with the keyring in `AIRISK_ENCRYPTION_KEYS`.

use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::str::FromStr;

use airisk_core::security::encryption::{EncryptionContext, EncryptionError, Encryptor, Purpose};
use airisk_core::security::tenant_context::TenantId;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

/// Buffer size of stdin and stdout in `--lines` mode.
const IO_BUFFER: usize = 1 << 16;

/// Arguments of `airisk crypto`.
#[derive(Debug, Args)]
pub struct CryptoArgs {
    #[command(subcommand)]
    command: CryptoCommand,
}

#[derive(Debug, Subcommand)]
enum CryptoCommand {
    /// Encrypt stdin under the primary key and print the ciphertext (`v1.<kid>.<base64url>`).
    ///
    /// Without --lines, all of stdin is one value, byte for byte: a trailing newline is part of
    /// it (`echo secret | airisk crypto encrypt` seals "secret\n"; use `printf %s secret` to
    /// avoid that). Decrypting gives back exactly those bytes.
    Encrypt(IoArgs),
    /// Decrypt a ciphertext from stdin and print the plaintext exactly, without adding a newline.
    ///
    /// Without --lines, one trailing newline (`\n` or `\r\n`) after the ciphertext is ignored.
    Decrypt(IoArgs),
    /// Re-encrypt ciphertexts under the primary key, without printing the plaintext.
    ///
    /// Values already under the primary key are checked and printed unchanged. Use after making a
    /// new key primary (see `airisk keys generate`).
    Rewrap(IoArgs),
}

#[derive(Debug, Args)]
struct IoArgs {
    /// The keyring: comma-separated `kid:base64key` entries, the first one encrypts. Read from the
    /// environment only: on the command line it is refused, since the process list would show it.
    #[arg(
        long = "keys",
        env = "AIRISK_ENCRYPTION_KEYS",
        hide_env_values = true,
        value_name = "KEYRING"
    )]
    keys: Option<KeyringText>,

    /// Tenant the values belong to, bound into each ciphertext (requires --purpose).
    #[arg(long, requires = "purpose", value_name = "TENANT")]
    tenant: Option<TenantId>,

    /// What the values are for, such as `model.api-key`, bound into each ciphertext (requires
    /// --tenant).
    #[arg(long, requires = "tenant", value_name = "PURPOSE")]
    purpose: Option<Purpose>,

    /// One value per line (for bulk jobs): each line, without its `\n`, is one value, and each
    /// result is printed on its own line. Stops at the first bad line, naming its number, with
    /// exit code 1; the results of the lines before it have been printed.
    #[arg(long)]
    lines: bool,
}

/// The keyring text from the environment, wiped when dropped and never shown by `Debug`.
#[derive(Clone)]
struct KeyringText(Zeroizing<String>);

impl FromStr for KeyringText {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KeyringText(Zeroizing::new(s.to_owned())))
    }
}

impl fmt::Debug for KeyringText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyringText(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Encrypt,
    Decrypt,
    Rewrap,
}

/// Runs `airisk crypto …`.
///
/// # Errors
/// A missing or invalid keyring, an input that does not encrypt or decrypt (with its line number
/// in `--lines` mode), or an I/O error on stdin or stdout.
pub fn run(args: CryptoArgs) -> anyhow::Result<()> {
    let (operation, io) = match args.command {
        CryptoCommand::Encrypt(io) => (Operation::Encrypt, io),
        CryptoCommand::Decrypt(io) => (Operation::Decrypt, io),
        CryptoCommand::Rewrap(io) => (Operation::Rewrap, io),
    };
    let encryptor = match &io.keys {
        Some(KeyringText(text)) => Encryptor::from_env_value(text)?,
        None => return Err(EncryptionError::KeyMissing.into()),
    };
    let ctx = match (io.tenant, io.purpose) {
        (Some(tenant), Some(purpose)) => Some(EncryptionContext::new(tenant, purpose)),
        // clap's `requires` makes the two flags come together.
        _ => None,
    };
    let job = Job {
        operation,
        encryptor: &encryptor,
        ctx: ctx.as_ref(),
    };
    if io.lines {
        job.run_lines()
    } else {
        job.run_whole()
    }
}

struct Job<'a> {
    operation: Operation,
    encryptor: &'a Encryptor,
    ctx: Option<&'a EncryptionContext>,
}

impl Job<'_> {
    /// All of stdin is one value.
    fn run_whole(&self) -> anyhow::Result<()> {
        let mut input = Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .read_to_end(&mut input)
            .context("could not read stdin")?;
        let input: &[u8] = match self.operation {
            Operation::Encrypt => &input,
            Operation::Decrypt | Operation::Rewrap => strip_newline(&input),
        };
        let mut stdout = std::io::stdout().lock();
        self.process(input, &mut stdout, false)?;
        stdout.flush().context("could not write to stdout")
    }

    /// One value per line, streamed through buffered stdin and stdout.
    fn run_lines(&self) -> anyhow::Result<()> {
        let mut reader = BufReader::with_capacity(IO_BUFFER, std::io::stdin().lock());
        let mut writer = BufWriter::with_capacity(IO_BUFFER, std::io::stdout().lock());
        // Holds plaintext when encrypting: wiped when dropped.
        let mut line = Zeroizing::new(Vec::new());
        let mut number = 0usize;
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("could not read line {}", number + 1))?;
            if read == 0 {
                break;
            }
            number += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let value: &[u8] = match self.operation {
                // Kept as is (a `\r` included), so a round trip gives back the same bytes.
                Operation::Encrypt => &line,
                // Ciphertexts never contain `\r`: tolerate CRLF files.
                Operation::Decrypt | Operation::Rewrap => line.strip_suffix(b"\r").unwrap_or(&line),
            };
            self.process(value, &mut writer, true)
                .with_context(|| format!("line {number}"))?;
        }
        writer.flush().context("could not write to stdout")
    }

    /// Encrypts, decrypts or rewraps one value and writes the result. In line mode every result
    /// ends with a newline, so a decrypted value may not contain one.
    fn process(&self, value: &[u8], out: &mut impl Write, line_mode: bool) -> anyhow::Result<()> {
        match self.operation {
            Operation::Encrypt => {
                let sealed = self.encryptor.encrypt_bytes(value, self.ctx)?;
                write_line(out, sealed.as_bytes())
            }
            Operation::Decrypt => {
                let plaintext = self.encryptor.decrypt_bytes(ciphertext(value)?, self.ctx)?;
                if line_mode {
                    if plaintext.contains(&b'\n') {
                        bail!(
                            "the decrypted value contains a newline, so it cannot be printed as \
                             one line; decrypt it without --lines"
                        );
                    }
                    write_line(out, &plaintext)
                } else {
                    out.write_all(&plaintext)
                        .context("could not write to stdout")
                }
            }
            Operation::Rewrap => {
                let sealed = self.encryptor.rewrap(ciphertext(value)?, self.ctx)?;
                write_line(out, sealed.as_bytes())
            }
        }
    }
}

fn write_line(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    out.write_all(bytes)
        .and_then(|()| out.write_all(b"\n"))
        .context("could not write to stdout")
}

/// A ciphertext is ASCII; anything else is not one.
fn ciphertext(value: &[u8]) -> anyhow::Result<&str> {
    std::str::from_utf8(value)
        .ok()
        .filter(|text| text.is_ascii())
        .context("malformed ciphertext: not ASCII text")
}

/// `input` without one trailing `\n` or `\r\n`.
fn strip_newline(input: &[u8]) -> &[u8] {
    input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(input)
}
