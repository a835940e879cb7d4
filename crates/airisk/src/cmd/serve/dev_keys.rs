//! Dev mode's key persistence: the keys `airisk serve --dev` generates, kept beside a durable dev
//! database (mode 0600) so a restart signs with the same ledger key and its printed tokens stay
//! valid; with `memory:` they die with the process, like the data.

use std::path::{Path, PathBuf};

use airisk_core::ledger::LedgerName;
use airisk_core::ports::{Clock, SystemClock};
use airisk_core::security::encryption::EncryptionKeyId;
use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::store::MEMORY_URL;

/// Dev mode's keys. With a durable database they are generated once and kept in a file beside it
/// (mode 0600), so a restart signs with the same ledger key (the database's old checkpoints still
/// verify) and the printed tokens stay valid. With `memory:` they die with the process, like the
/// data.
pub(super) struct DevSecrets {
    pub(super) encryption: Zeroizing<String>,
    pub(super) ledger: Zeroizing<String>,
    pub(super) jwt: Zeroizing<String>,
}

const DEV_ENCRYPTION: &str = "AIRISK_ENCRYPTION_KEYS";
const DEV_LEDGER: &str = "AIRISK_LEDGER_SIGNING_KEY";
const DEV_JWT: &str = "AIRISK_JWT_SECRET";

impl DevSecrets {
    /// Fresh keys: an encryption key, a ledger signing key and a 256-bit HS256 secret.
    pub(super) fn generate() -> anyhow::Result<DevSecrets> {
        let kid = EncryptionKeyId::generate(SystemClock.now().date_naive())?;
        let encryption = airisk_core::security::encryption::generate_key_entry(&kid)?;
        let (ledger, _) =
            airisk_core::ledger::generate_key_pair(&LedgerName::parse("airisk.dev/ledger")?)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut *bytes)
            .map_err(|_| anyhow!("the system random number generator failed"))?;
        Ok(DevSecrets {
            encryption,
            ledger,
            jwt: Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes)),
        })
    }

    /// Reads `NAME=value` lines written by [`DevSecrets::save`].
    pub(super) fn load(path: &Path) -> anyhow::Result<DevSecrets> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read the dev keys {}", path.display()))?,
        );
        let get = |name: &str| -> anyhow::Result<Zeroizing<String>> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(|v| Zeroizing::new(v.trim().to_owned()))
                .ok_or_else(|| {
                    anyhow!(
                        "{} lacks {name}: delete it together with the dev database",
                        path.display()
                    )
                })
        };
        Ok(DevSecrets {
            encryption: get(DEV_ENCRYPTION)?,
            ledger: get(DEV_LEDGER)?,
            jwt: get(DEV_JWT)?,
        })
    }

    /// Writes the keys to `path` (a new file, mode 0600 on Unix; never over an existing one).
    pub(super) fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create {}", dir.display()))?;
        }
        let text = Zeroizing::new(format!(
            "# airisk dev mode keys for the database beside this file. Dev only; delete both together.\n\
             {DEV_ENCRYPTION}={}\n{DEV_LEDGER}={}\n{DEV_JWT}={}\n",
            self.encryption.as_str(),
            self.ledger.as_str(),
            self.jwt.as_str()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("could not create the dev keys {}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("could not write the dev keys {}", path.display()))
    }
}

/// Where dev mode keeps its keys for `database_url`: beside a SQLite file
/// (`<file>.dev-keys`), in `airisk-data/dev-keys` for another durable store, nowhere for
/// `memory:`.
pub(super) fn dev_keys_file(database_url: &str) -> Option<PathBuf> {
    if database_url == MEMORY_URL {
        return None;
    }
    match database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
    {
        // The file's path only: the store ignores a `?query`, and it may carry a password.
        Some(path) => Some(PathBuf::from(format!(
            "{}.dev-keys",
            path.split_once('?').map_or(path, |(p, _)| p)
        ))),
        None => Some(PathBuf::from("airisk-data/dev-keys")),
    }
}
