//! `airisk audit`: append to, verify, export and prove the tamper-evident audit ledger.
//!
//! These commands open the store directly (an operator's or auditor's tool on the database host);
//! the HTTP service enforces roles for everyone else.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::AuditRecord;
use airisk_core::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};
use airisk_core::governance::audit_verification::{VerifyOptions, VerifyReport};
use airisk_core::ledger::{LedgerName, LedgerSigner, LedgerVerifier, SIGNING_KEY_ENV};
use airisk_core::ports::{
    AuditRepository, GovernanceStore, IdGenerator, SystemClock, UuidV7Generator,
};
use airisk_core::request::CorrelationId;
use airisk_core::security::key_custody::{OpenedValue, open_sealed_metadata};
use airisk_core::security::tenant_context::TenantId;
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Args, Subcommand};
use serde_json::json;

/// Default store: a SQLite file under `./airisk-data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://airisk-data/airisk.db";
/// Ledger name used when neither a signing nor a verifier key names one.
pub const DEFAULT_LEDGER_NAME: &str = "airisk.local/ledger";
/// How many entries `export` reads per page.
const EXPORT_PAGE: usize = 16_384;

/// Arguments of `airisk audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: AuditCommand,
}

/// Where the ledger lives and which keys sign and verify it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Database URL: `sqlite://path/to/file.db` (the embedded default) or `postgres://…`. A URL
    /// with a password is refused here (the process list shows it): put it in
    /// AIRISK_DATABASE_URL, or the password in PGPASSWORD or ~/.pgpass.
    #[arg(
        long,
        env = "AIRISK_DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE_URL,
        global = true
    )]
    database_url: String,

    /// Ed25519 checkpoint signing key (`PRIVATE+KEY+<name>+<keyid>+<base64>`), from
    /// `airisk keys generate --ledger`. Environment only; never on the command line. Without it,
    /// with AIRISK_PKCS11_MODULE and AIRISK_PKCS11_LEDGER_KEY_LABEL set, checkpoints are signed
    /// by the ledger key in the PKCS#11 token.
    #[arg(long, env = SIGNING_KEY_ENV, hide_env_values = true, global = true)]
    signing_key: Option<String>,

    /// Verifier key (`<name>+<keyid>+<base64>`) to check checkpoint signatures with. Derived from
    /// the signing key when that is set.
    #[arg(long, env = "AIRISK_LEDGER_VERIFIER_KEY", global = true)]
    verifier_key: Option<String>,

    /// Sign a checkpoint after this many new entries (0: never by count).
    #[arg(
        long,
        env = "AIRISK_CHECKPOINT_EVERY_ENTRIES",
        default_value_t = 1000,
        global = true
    )]
    checkpoint_every_entries: u64,

    /// Sign a checkpoint when the last one is older than this many milliseconds and new entries
    /// exist (0: never by time).
    #[arg(
        long,
        env = "AIRISK_CHECKPOINT_INTERVAL_MS",
        default_value_t = 10_000,
        global = true
    )]
    checkpoint_interval_ms: u64,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Append records: one from flags, one JSON object from stdin (`--json`), or JSON Lines from
    /// stdin (`--lines`, one receipt printed per durable record).
    Log(LogArgs),
    /// Recompute every leaf, root and checkpoint signature; exit 0 only if intact.
    Verify(VerifyArgs),
    /// Write a tenant's ledger as JSON Lines: a checkpoint header (signed note, verifier key), then
    /// one line per entry with the exact leaf bytes.
    Export(ExportArgs),
    /// Print an inclusion or consistency proof as JSON.
    Proof(ProofArgs),
    /// Sign a checkpoint of a tenant's current tree head now and print its note.
    Checkpoint(TenantArg),
}

#[derive(Debug, Args)]
struct LogArgs {
    /// Read one JSON object (`actor`, `tenant_id`, `action`, `resource_type`, `resource_id`,
    /// `reason`?, `correlation_id`?, `metadata`?) from stdin.
    #[arg(long, conflicts_with_all = ["lines", "actor"])]
    json: bool,
    /// Read JSON Lines from stdin, one record each; print one receipt line per durable record;
    /// stop at the first bad line, naming it.
    #[arg(long, conflicts_with = "actor")]
    lines: bool,
    /// Who acted.
    #[arg(long, required_unless_present_any = ["json", "lines"])]
    actor: Option<String>,
    /// The tenant whose ledger receives the record.
    #[arg(long, required_unless_present_any = ["json", "lines"])]
    tenant: Option<String>,
    /// What was done, e.g. `model.register`.
    #[arg(long, required_unless_present_any = ["json", "lines"])]
    action: Option<String>,
    /// The kind of resource acted on.
    #[arg(long, required_unless_present_any = ["json", "lines"])]
    resource_type: Option<String>,
    /// The resource's id.
    #[arg(long, required_unless_present_any = ["json", "lines"])]
    resource_id: Option<String>,
    /// Why.
    #[arg(long)]
    reason: Option<String>,
    /// Correlation id (generated when absent).
    #[arg(long)]
    correlation_id: Option<String>,
    /// Extra context as a JSON object.
    #[arg(long)]
    metadata: Option<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Verify only this tenant (default: every tenant in the store).
    #[arg(long)]
    tenant: Option<String>,
    /// A checkpoint note kept outside the store (e.g. from an earlier export); detects truncation
    /// and rollback. Needs `--tenant`.
    #[arg(long, value_name = "FILE", requires = "tenant")]
    checkpoint: Option<PathBuf>,
    /// Print one JSON object per tenant instead of sentences.
    #[arg(long)]
    json: bool,
    /// Also decode every record and check its bytes are exactly canonical (slower; checks the
    /// writer, not needed to detect tampering).
    #[arg(long)]
    deep: bool,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The tenant to export.
    #[arg(long)]
    tenant: String,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// For an auditor holding the key-encryption key (AIRISK_ENCRYPTION_KEYS): add a `decrypted`
    /// member to each entry whose record has sealed metadata, with each value opened under the
    /// tenant's data key, or {"erased": true} once the tenant was shredded. The leaf bytes are
    /// unchanged, so the export verifies exactly as without it.
    #[arg(long)]
    decrypt: bool,
}

#[derive(Debug, Args)]
struct TenantArg {
    /// The tenant.
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Args)]
struct ProofArgs {
    #[command(subcommand)]
    kind: ProofKind,
}

#[derive(Debug, Subcommand)]
enum ProofKind {
    /// Prove entry `--seq` is in the tree of `--tree-size` entries (default: the latest
    /// checkpoint's size, else the current size).
    Inclusion {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The entry.
        #[arg(long)]
        seq: u64,
        /// The tree size to prove against.
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Prove the tree of `--from` entries is a prefix of the tree of `--to` entries (default: the
    /// current size).
    Consistency {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The older size.
        #[arg(long)]
        from: u64,
        /// The newer size.
        #[arg(long)]
        to: Option<u64>,
    },
}

/// Runs `airisk audit …`.
///
/// # Errors
/// Bad input, an unreachable store, or (for `verify`) a ledger that is not intact.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    let runtime = crate::cmd::store_runtime()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: AuditArgs) -> anyhow::Result<()> {
    let keys = LedgerKeys::from_args(&args.store)?;
    let stores = crate::store::open(&args.store.database_url, Arc::new(SystemClock)).await?;
    let governance = stores.governance;
    let store = stores.audit;
    let policy = CheckpointPolicy {
        every_entries: Some(args.store.checkpoint_every_entries).filter(|n| *n > 0),
        every_interval: Some(Duration::from_millis(args.store.checkpoint_interval_ms))
            .filter(|d| !d.is_zero()),
    };
    let logger = AuditLogger::new(
        store.clone(),
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        keys.name.clone(),
        keys.signer.clone(),
        policy,
    );
    match args.command {
        AuditCommand::Log(a) => log(&logger, a).await,
        AuditCommand::Verify(a) => verify(&logger, store.as_ref(), &keys, a).await,
        AuditCommand::Export(a) => {
            export(&logger, store.as_ref(), governance.as_ref(), &keys, a).await
        }
        AuditCommand::Proof(a) => proof(&logger, store.as_ref(), a).await,
        AuditCommand::Checkpoint(a) => {
            let tenant = parse_tenant(&a.tenant)?;
            let cp = logger.checkpoint(&tenant).await?;
            print!("{}", cp.note);
            Ok(())
        }
    }
}

/// The ledger's name and keys, from the environment or flags.
struct LedgerKeys {
    name: LedgerName,
    signer: Option<Arc<LedgerSigner>>,
    verifier: Option<LedgerVerifier>,
}

impl LedgerKeys {
    fn from_args(args: &StoreArgs) -> anyhow::Result<LedgerKeys> {
        let signer = match &args.signing_key {
            Some(text) => Some(Arc::new(
                LedgerSigner::from_signing_key(text.trim())
                    .with_context(|| format!("{SIGNING_KEY_ENV} is not a valid signing key"))?,
            )),
            None => crate::cmd::hsm::ledger_signer()?.map(Arc::new),
        };
        let verifier = match (&args.verifier_key, &signer) {
            (Some(text), _) => Some(
                LedgerVerifier::parse(text.trim())
                    .context("AIRISK_LEDGER_VERIFIER_KEY is not a valid verifier key")?,
            ),
            (None, Some(s)) => Some(s.verifier()),
            (None, None) => None,
        };
        if let (Some(s), Some(v)) = (&signer, &verifier)
            && s.verifier().to_verifier_key() != v.to_verifier_key()
        {
            bail!("the verifier key does not belong to the signing key");
        }
        let name = match (&signer, &verifier) {
            (Some(s), _) => s.name().clone(),
            (None, Some(v)) => v.name().clone(),
            (None, None) => LedgerName::parse(DEFAULT_LEDGER_NAME)?,
        };
        Ok(LedgerKeys {
            name,
            signer,
            verifier,
        })
    }
}

fn parse_tenant(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).with_context(|| format!("invalid tenant {s:?}"))
}

fn event_from(input: AuditEventInput, ids: &dyn IdGenerator) -> anyhow::Result<AuditEvent> {
    Ok(AuditEvent::parse(ids.new_id(), Outcome::Success, input)?)
}

/// Accepts the input shape of `log --json` / `--lines`: `correlation_id` may be omitted.
fn parse_input(text: &str) -> anyhow::Result<AuditEventInput> {
    let mut value: serde_json::Value = serde_json::from_str(text).context("not a JSON object")?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| anyhow!("not a JSON object"))?;
    object
        .entry("correlation_id")
        .or_insert_with(|| json!(CorrelationId::generate().as_str()));
    serde_json::from_value(value).context("not an audit record")
}

async fn log(logger: &AuditLogger, args: LogArgs) -> anyhow::Result<()> {
    let ids = UuidV7Generator;
    let stdout = std::io::stdout();
    if args.lines {
        let mut out = stdout.lock();
        for (index, line) in std::io::stdin().lock().lines().enumerate() {
            let number = index + 1;
            let line = line.with_context(|| format!("line {number}: could not read stdin"))?;
            if line.trim().is_empty() {
                continue;
            }
            let event = parse_input(&line)
                .and_then(|input| event_from(input, &ids))
                .with_context(|| format!("line {number}"))?;
            let receipts = logger
                .append(vec![event])
                .await
                .with_context(|| format!("line {number}"))?;
            for r in receipts {
                // Printed and flushed only once the record is durable.
                writeln!(out, "{}", serde_json::to_string(&r)?)?;
            }
            out.flush()?;
        }
        return Ok(());
    }
    let input = if args.json {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("could not read stdin")?;
        parse_input(&text)?
    } else {
        let metadata = match &args.metadata {
            Some(text) => Some(serde_json::from_str(text).context("--metadata is not JSON")?),
            None => None,
        };
        AuditEventInput {
            actor: args.actor.unwrap_or_default(),
            tenant_id: args.tenant.unwrap_or_default(),
            action: args.action.unwrap_or_default(),
            resource_type: args.resource_type.unwrap_or_default(),
            resource_id: args.resource_id.unwrap_or_default(),
            reason: args.reason,
            correlation_id: args
                .correlation_id
                .unwrap_or_else(|| CorrelationId::generate().to_string()),
            metadata,
        }
    };
    let event = event_from(input, &ids)?;
    let receipts = logger.append(vec![event]).await?;
    let mut out = stdout.lock();
    for r in receipts {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    }
    Ok(())
}

async fn verify(
    logger: &AuditLogger,
    store: &dyn AuditRepository,
    keys: &LedgerKeys,
    args: VerifyArgs,
) -> anyhow::Result<()> {
    let verifier = keys.verifier.as_ref().ok_or_else(|| {
        anyhow!(
            "verify needs the ledger's verifier key: set AIRISK_LEDGER_VERIFIER_KEY (or \
             AIRISK_LEDGER_SIGNING_KEY) so checkpoint signatures can be checked"
        )
    })?;
    let kept = match &args.checkpoint {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read the checkpoint {}", path.display()))?,
        ),
        None => None,
    };
    let tenants = match &args.tenant {
        Some(t) => vec![parse_tenant(t)?],
        None => store.tenants().await?,
    };
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let mut broken = Vec::new();
    for tenant in &tenants {
        let report = logger
            .verify_with(
                tenant,
                &VerifyOptions {
                    verifier: Some(verifier),
                    kept_checkpoint: kept.as_deref(),
                    deep: args.deep,
                },
                |done, total| {
                    if show_progress {
                        let pct = (done * 100).checked_div(total).unwrap_or(100);
                        eprint!("\rverifying {tenant}: {done}/{total} entries ({pct}%)");
                    }
                },
            )
            .await?;
        if show_progress {
            eprint!("\r\x1b[2K");
        }
        print_report(&report, args.json)?;
        if !report.is_intact() {
            broken.push(tenant.to_string());
        }
    }
    if tenants.is_empty() && !args.json {
        println!("no ledgers in the store");
    }
    if broken.is_empty() {
        Ok(())
    } else {
        bail!("ledger not intact for tenant(s): {}", broken.join(", "))
    }
}

fn print_report(report: &VerifyReport, as_json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", report.to_json())?;
        return Ok(());
    }
    match &report.problem {
        None => writeln!(
            out,
            "{}: intact: {} entries, root {}, {} stored checkpoint(s) verified{}",
            report.tenant,
            report.entries,
            report.root.map(|r| r.to_hex()).unwrap_or_default(),
            report.checkpoints_verified,
            if report.kept_checkpoint_verified {
                ", kept checkpoint verified"
            } else {
                ""
            }
        )?,
        Some(problem) => writeln!(
            out,
            "{}: NOT INTACT: {}{}",
            report.tenant,
            problem,
            problem
                .seq()
                .map(|s| format!(" (first bad seq {s})"))
                .unwrap_or_default()
        )?,
    }
    Ok(())
}

async fn export(
    logger: &AuditLogger,
    store: &dyn AuditRepository,
    governance: &dyn GovernanceStore,
    keys: &LedgerKeys,
    args: ExportArgs,
) -> anyhow::Result<()> {
    let tenant = parse_tenant(&args.tenant)?;
    let envelope = if args.decrypt {
        Some(crate::cmd::hsm::envelope(
            "--decrypt needs the key-encryption key",
        )?)
    } else {
        None
    };
    // With a signing key, commit to the whole ledger first so the export is covered end to end.
    let checkpoint = if keys.signer.is_some() {
        Some(logger.checkpoint(&tenant).await?)
    } else {
        store.latest_checkpoint(&tenant).await?
    };
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, sink);
    // The checkpoint comes first, so a verifier knows which prefix it covers while it streams.
    let header = json!({
        "type": "checkpoint",
        "tenant_id": tenant.as_str(),
        "checkpoint": checkpoint.as_ref().map(|c| c.note.as_str()),
        "verifier_key": keys.verifier.as_ref().map(LedgerVerifier::to_verifier_key),
    });
    writeln!(out, "{header}")?;
    let mut next = 0u64;
    loop {
        let page = store.entries(&tenant, next, EXPORT_PAGE).await?;
        let Some(last) = page.last() else { break };
        next = last.seq + 1;
        for e in &page {
            let mut line = json!({
                "type": "entry",
                "seq": e.seq,
                "leaf": BASE64.encode(&e.leaf),
                "leaf_hash": e.leaf_hash.to_hex(),
            });
            if let Some(env) = &envelope {
                let record = AuditRecord::from_leaf_bytes(&e.leaf)
                    .with_context(|| format!("entry {}", e.seq))?;
                if record.event().sealed_metadata().is_some() {
                    let values = open_sealed_metadata(governance, env, record.event())
                        .await
                        .with_context(|| format!("entry {}: sealed metadata", e.seq))?;
                    let mut decrypted = serde_json::Map::new();
                    for (key, value) in values {
                        let v = match value {
                            OpenedValue::Value(v) => v,
                            OpenedValue::Erased => json!({"erased": true}),
                        };
                        decrypted.insert(key, v);
                    }
                    if let Some(obj) = line.as_object_mut() {
                        obj.insert("decrypted".into(), serde_json::Value::Object(decrypted));
                    }
                }
            }
            writeln!(out, "{line}")?;
        }
    }
    out.flush().context("could not write the export")?;
    Ok(())
}

async fn proof(
    logger: &AuditLogger,
    store: &dyn AuditRepository,
    args: ProofArgs,
) -> anyhow::Result<()> {
    let value = match args.kind {
        ProofKind::Inclusion {
            tenant,
            seq,
            tree_size,
        } => {
            let tenant = parse_tenant(&tenant)?;
            let latest = store.latest_checkpoint(&tenant).await?;
            let tree_size = match (tree_size, &latest) {
                (Some(s), _) => s,
                (None, Some(cp)) if cp.size > seq => cp.size,
                _ => logger.tree_head(&tenant).await?.size,
            };
            let proof = logger.inclusion_proof(&tenant, seq, tree_size).await?;
            let entry = store
                .entries(&tenant, seq, 1)
                .await?
                .into_iter()
                .next()
                .filter(|e| e.seq == seq)
                .ok_or_else(|| anyhow!("entry {seq} does not exist"))?;
            json!({
                "tenant_id": tenant.as_str(),
                "seq": seq,
                "tree_size": tree_size,
                "leaf_hash": entry.leaf_hash.to_hex(),
                "root": logger.root_at(&tenant, tree_size).await?.to_hex(),
                "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
                "checkpoint": latest.filter(|c| c.size == tree_size).map(|c| c.note),
            })
        }
        ProofKind::Consistency { tenant, from, to } => {
            let tenant = parse_tenant(&tenant)?;
            let to = match to {
                Some(t) => t,
                None => logger.tree_head(&tenant).await?.size,
            };
            let proof = logger.consistency_proof(&tenant, from, to).await?;
            json!({
                "tenant_id": tenant.as_str(),
                "size1": from,
                "size2": to,
                "root1": logger.root_at(&tenant, from).await?.to_hex(),
                "root2": logger.root_at(&tenant, to).await?.to_hex(),
                "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            })
        }
    };
    println!("{value}");
    Ok(())
}
