//! `airisk integrations mlflow …`: connect, list, disconnect MLflow instances (the TOML file
//! `airisk serve --mlflow-config` reads), and trigger a reconciliation on a running service.

use std::path::PathBuf;

use airisk_server::https::HttpsClient;
use airisk_server::integrations::mlflow::client::MlflowClient;
use airisk_server::integrations::mlflow::{
    BaselineAlias, ConfigFile, DEFAULT_PROTECTED_ALIAS, Instance, InstanceConfig, check_instance_id,
};
use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};

/// Arguments of `airisk integrations`.
#[derive(Debug, Args)]
pub struct IntegrationsArgs {
    #[command(subcommand)]
    command: IntegrationsCommand,
}

#[derive(Debug, Subcommand)]
enum IntegrationsCommand {
    /// Govern an MLflow (OSS 3.x) Model Registry: new versions need an airisk approval, only
    /// airisk moves the protected aliases.
    Mlflow(MlflowArgs),
}

#[derive(Debug, Args)]
struct MlflowArgs {
    #[command(subcommand)]
    command: MlflowCommand,
}

#[derive(Debug, Args)]
struct FileArg {
    /// The integration's TOML file (what `airisk serve --mlflow-config` reads).
    #[arg(long, env = "AIRISK_MLFLOW_CONFIG", value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum MlflowCommand {
    /// Connect an instance: creates the webhook in MLflow (through its API) and adds the
    /// instance to the file. Restart `airisk serve` to load it.
    Connect {
        #[command(flatten)]
        file: FileArg,
        /// The instance's id (letters, digits, '-', '_', '.').
        #[arg(long)]
        id: String,
        /// MLflow's base URL, e.g. http://mlflow:5000.
        #[arg(long)]
        url: String,
        /// The airisk tenant the instance belongs to.
        #[arg(long)]
        tenant: String,
        /// An alias only airisk may move (repeat for several) [default: production].
        #[arg(long = "protected-alias", value_name = "ALIAS")]
        protected_aliases: Vec<String>,
        /// airisk's base URL as MLflow reaches it (the webhook goes to
        /// URL/v1/integrations/mlflow/webhook?instance=ID).
        #[arg(long, env = "AIRISK_PUBLIC_URL")]
        airisk_url: String,
        /// Environment variable holding the webhook's HMAC secret (at least 16 bytes); the
        /// service must have it too.
        #[arg(long, default_value = "AIRISK_MLFLOW_WEBHOOK_SECRET")]
        webhook_secret_env: String,
        /// Environment variable holding a bearer token for MLflow's API, if it needs one.
        #[arg(long)]
        token_env: Option<String>,
        /// PEM bundle of the private CA that signs MLflow's certificate (https URLs); without
        /// it the Mozilla roots are trusted.
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
        /// Map an MLflow user to an airisk identity (MLFLOW_USER=AIRISK_ID; repeat). Unmapped
        /// users are their own canonical airisk identity.
        #[arg(long = "author", value_name = "MLFLOW_USER=AIRISK_ID")]
        authors: Vec<String>,
    },
    /// List the connected instances.
    List {
        #[command(flatten)]
        file: FileArg,
    },
    /// Disconnect an instance: deletes its webhook in MLflow and removes it from the file.
    Disconnect {
        #[command(flatten)]
        file: FileArg,
        /// The instance's id.
        #[arg(long)]
        id: String,
        /// Remove it from the file even if MLflow cannot delete the webhook.
        #[arg(long)]
        force: bool,
    },
    /// Ask a running service to sync decided approvals and repair every protected alias that
    /// drifted from airisk's approvals (needs an admin token).
    Reconcile {
        /// The service's base URL.
        #[arg(long, env = "AIRISK_URL")]
        url: String,
        /// An admin bearer token of the tenant (environment only).
        #[arg(long, env = "AIRISK_TOKEN", hide_env_values = true, hide = true)]
        token: String,
        /// PEM bundle of the private CA that signs the service's certificate (https URLs).
        #[arg(long, env = "AIRISK_CA_FILE", value_name = "PEM")]
        ca_file: Option<PathBuf>,
    },
}

/// Runs `airisk integrations …`.
///
/// # Errors
/// Whatever the subcommand could not do, in words.
pub fn run(args: IntegrationsArgs) -> anyhow::Result<()> {
    let IntegrationsCommand::Mlflow(mlflow) = args.command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(mlflow_command(mlflow.command))
}

async fn mlflow_command(command: MlflowCommand) -> anyhow::Result<()> {
    match command {
        MlflowCommand::Connect {
            file,
            id,
            url,
            tenant,
            protected_aliases,
            airisk_url,
            webhook_secret_env,
            token_env,
            ca_file,
            authors,
        } => {
            check_instance_id(&id).map_err(|e| anyhow!(e))?;
            let authors = authors
                .iter()
                .map(|a| {
                    a.split_once('=')
                        .map(|(m, i)| (m.to_owned(), i.to_owned()))
                        .ok_or_else(|| anyhow!("--author {a:?} is not MLFLOW_USER=AIRISK_ID"))
                })
                .collect::<anyhow::Result<std::collections::BTreeMap<_, _>>>()?;
            let mut config = ConfigFile::read(&file.file).map_err(|e| anyhow!(e))?;
            if config.instances.iter().any(|i| i.id == id) {
                bail!("instance {id} is already connected; disconnect it first");
            }
            let mut entry = InstanceConfig {
                id: id.clone(),
                url: url.trim_end_matches('/').to_owned(),
                tenant,
                protected_aliases: if protected_aliases.is_empty() {
                    vec![DEFAULT_PROTECTED_ALIAS.to_owned()]
                } else {
                    protected_aliases
                },
                webhook_secret_env: webhook_secret_env.clone(),
                token_env,
                ca_file,
                authors,
                webhook_id: None,
                baseline: Vec::new(),
            };
            // Validates everything the service will, secrets included, before touching MLflow.
            let instance = Instance::from_config(&entry).map_err(|e| anyhow!(e))?;
            let secret = zeroize::Zeroizing::new(
                std::env::var(&webhook_secret_env)
                    .with_context(|| format!("{webhook_secret_env} is not set"))?,
            );
            // Where the protected aliases point now: kept there until a version is approved,
            // so connecting does not take live aliases away.
            let models = instance
                .client()
                .registered_models()
                .await
                .map_err(|e| anyhow!("could not read MLflow's registered models: {e}"))?;
            // Prompts too: MLflow keeps them as registered models with aliases.
            for model in &models {
                for alias in &model.aliases {
                    if entry.protected_aliases.contains(&alias.alias) {
                        entry.baseline.push(BaselineAlias {
                            model: model.name.clone(),
                            alias: alias.alias.clone(),
                            version: alias.version.clone(),
                        });
                    }
                }
            }
            let hook_url = format!(
                "{}/v1/integrations/mlflow/webhook?instance={id}",
                airisk_url.trim_end_matches('/')
            );
            let webhook_id = instance
                .client()
                .create_webhook(&format!("airisk-{id}"), &hook_url, &secret)
                .await
                .map_err(|e| anyhow!("could not create the webhook in MLflow: {e}"))?;
            entry.webhook_id = Some(webhook_id.clone());
            config.instances.push(entry);
            config.write(&file.file).map_err(|e| anyhow!(e))?;
            let kept = config.instances.last().map_or(0, |i| i.baseline.len());
            println!(
                "connected MLflow instance {id}: webhook {webhook_id} -> {hook_url}; {kept} protected alias(es) kept as the baseline; restart airisk serve --mlflow-config {} to load it",
                file.file.display()
            );
            Ok(())
        }
        MlflowCommand::List { file } => {
            let config = ConfigFile::read(&file.file).map_err(|e| anyhow!(e))?;
            if config.instances.is_empty() {
                println!("no MLflow instance is connected");
            }
            for i in &config.instances {
                let secret_set = std::env::var_os(&i.webhook_secret_env).is_some();
                println!(
                    "{}\turl={}\ttenant={}\tprotected={}\twebhook={}\tsecret_env={}{}",
                    i.id,
                    i.url,
                    i.tenant,
                    i.protected_aliases.join(","),
                    i.webhook_id.as_deref().unwrap_or("-"),
                    i.webhook_secret_env,
                    if secret_set { "" } else { " (not set here)" }
                );
            }
            Ok(())
        }
        MlflowCommand::Disconnect { file, id, force } => {
            let mut config = ConfigFile::read(&file.file).map_err(|e| anyhow!(e))?;
            let Some(pos) = config.instances.iter().position(|i| i.id == id) else {
                bail!("instance {id} is not connected");
            };
            let entry = config.instances.remove(pos);
            if let Some(webhook_id) = &entry.webhook_id {
                let token = match &entry.token_env {
                    Some(var) => Some(zeroize::Zeroizing::new(
                        std::env::var(var).with_context(|| format!("{var} is not set"))?,
                    )),
                    None => None,
                };
                let http = HttpsClient::new(entry.ca_file.as_deref()).map_err(|e| anyhow!(e))?;
                let client = MlflowClient::new(http, &entry.url, token);
                match client.delete_webhook(webhook_id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) if force => eprintln!("warning: webhook {webhook_id} not deleted: {e}"),
                    Err(e) => bail!(
                        "could not delete webhook {webhook_id} in MLflow ({e}); --force removes the instance anyway"
                    ),
                }
            }
            config.write(&file.file).map_err(|e| anyhow!(e))?;
            println!("disconnected MLflow instance {id}; restart airisk serve to unload it");
            Ok(())
        }
        MlflowCommand::Reconcile {
            url,
            token,
            ca_file,
        } => {
            let token = zeroize::Zeroizing::new(token);
            let http = HttpsClient::new(ca_file.as_deref()).map_err(|e| anyhow!(e))?;
            let mut auth =
                hyper::header::HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
                    .map_err(|_| anyhow!("AIRISK_TOKEN is not a valid header value"))?;
            auth.set_sensitive(true);
            let response = http
                .send(
                    hyper::Method::POST,
                    &format!(
                        "{}/v1/integrations/mlflow/reconcile",
                        url.trim_end_matches('/')
                    ),
                    &[(hyper::header::AUTHORIZATION, auth)],
                    None,
                    std::time::Duration::from_secs(600),
                )
                .await
                .map_err(|e| anyhow!("could not reach {url}: {e}"))?;
            let status = response.status();
            let body = airisk_server::https::read_body(response, 16 * 1024 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if !status.is_success() {
                bail!("the service answered {status}: {body}");
            }
            println!("{body}");
            Ok(())
        }
    }
}
