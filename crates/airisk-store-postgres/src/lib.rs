//! # airisk-store-postgres
//!
//! The PostgreSQL store of the ai-risk-engine: every store port of `airisk-core`
//! ([`AuditRepository`], [`GovernanceStore`]) over one database that many server processes share,
//! where the database itself is the second wall: it keeps tenants apart and refuses to rewrite
//! history even if application code has a bug.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use airisk_core::ports::{AuditRepository, GovernanceStore, SystemClock};
//! use airisk_store_postgres::{PostgresOptions, PostgresStore};
//!
//! // Once, as the schema owner (also `airisk migrate --database-url …`):
//! airisk_store_postgres::migrate("postgres://airisk_owner@db.internal/airisk").await?;
//! // The service, as a login that is a member of airisk_app:
//! let store = Arc::new(
//!     PostgresStore::connect(
//!         "postgres://airisk_svc@db.internal/airisk?sslmode=verify-full",
//!         Arc::new(SystemClock),
//!         PostgresOptions::default(),
//!     )
//!     .await?,
//! );
//! let audit: Arc<dyn AuditRepository> = store.clone();
//! let governance: Arc<dyn GovernanceStore> = store;
//! # let _ = (audit, governance);
//! # Ok(()) }
//! ```
//!
//! ## Tenant isolation in the database
//!
//! Every tenant table has row-level security ENABLED and FORCED, with one policy:
//! `tenant_id = current_setting('airisk.tenant_id', true)`. The store connects as a login that is
//! a member of the `airisk_app` role, which the migrations create without `BYPASSRLS` and which
//! owns nothing, and [`PostgresStore::connect`] refuses a login that could bypass the policies
//! (superuser, `BYPASSRLS`, member of the tables' owner). Every transaction starts with
//! `set_config('airisk.tenant_id', $tenant, true)`: transaction-local, so when a pooled connection
//! is handed to the next request it carries no tenant, and a query without one sees no rows.
//!
//! The one deliberate cross-tenant read, [`AuditRepository::tenants`], reads `audit_tenants`, a
//! directory of tenant ids (and nothing else) without row-level security, written in the
//! transaction that appends a tenant's first entry.
//!
//! ## History the database refuses to change
//!
//! `airisk_app` may INSERT and SELECT audit entries, nodes, checkpoints, prompt versions and label
//! moves, and has no UPDATE, DELETE or TRUNCATE on them; it may UPDATE only named columns of the
//! tree heads and of the governance state rows (approval requests, model versions, prompt labels).
//! Triggers raise on UPDATE, DELETE and TRUNCATE of history for every role, superusers included,
//! and let a tree head only grow, unless a member of the tables' owner role opens a maintenance
//! window (`SET LOCAL airisk.maintenance = 'on'`, docs/OPERATIONS.md). Refusals surface as
//! [`StoreError::Refused`].
//!
//! ## Appends: serialised per tenant by its head row, group-committed per process
//!
//! Each tenant's tree head is one row of `audit_heads`. Every write transaction of a tenant locks
//! it first (`SELECT … FOR UPDATE`, inserting it on first use with `ON CONFLICT DO NOTHING`), so
//! appends from any number of connections and processes are serialised per tenant: seqs are
//! gapless from 0 and there is one tree. Tenants never wait for each other.
//!
//! Within a process, concurrent writes of one tenant are batched into one transaction (one WAL
//! flush): a small queue per tenant, drained by one task at a time. Each request of a batch keeps
//! its own outcome: a change set whose mutation conflicts rolls the batch's transaction back, is
//! answered with its conflict, and the batch runs again without it (cheaper than a savepoint per
//! request, which would add two round trips per request while the head is locked).
//! [`PostgresOptions`] sets the batch budget. A batch costs three round trips whatever its size
//! while its tenant has one writer: `BEGIN` with the tenant's `set_config`; one statement that
//! moves the head with a compare-and-set against the head the drainer's previous batch left and,
//! gated on it, inserts every entry and node and applies the batch's approval and model mutations
//! (`unnest` of column arrays in data-modifying CTEs); `COMMIT`. If another writer (another
//! process) moved the head, that statement writes nothing and the batch runs again after locking
//! the head with `SELECT … FOR UPDATE` (one more round trip), as every batch does until a locked
//! read finds the head where this process left it. Prompt, label and data-key mutations, and two
//! writes of one row in one batch, are applied one statement each, under the lock. A batch that
//! carries idempotency keys looks them up first (one more round trip).
//!
//! Reads run in a read-only transaction (`BEGIN READ ONLY` with the tenant's `set_config`, then
//! the query), which is ended without waiting: sqlx sends its `ROLLBACK` with the check the pool
//! runs on every returned connection, before anyone else uses it. The key lookups of a
//! register+approve pair (a model version; a model with its request; a request with its subject)
//! are statements prepared on each connection when it opens, sent with their `BEGIN READ ONLY`
//! and `ROLLBACK` as one simple-protocol query: one round trip, no parsing per read (every
//! prepared statement is still planned per execution, for the tables as they are). A pooled
//! connection is pinged when it is handed out only if it sat idle for a second or more.
//!
//! A receipt means the record is durable: answers go out after `COMMIT` returned, and the store's
//! connections never run with `synchronous_commit = off` (a server default of `off` is overridden
//! to `on` per connection; `local`, `remote_write`, `remote_apply` are kept).
//!
//! ## Governance commits
//!
//! [`GovernanceStore::commit`] checks the change set's tenant, then queues it like an append: in
//! the tenant's batch transaction its mutations are applied with optimistic checks (`UPDATE …
//! WHERE tenant_id = $1 AND id = $2 AND version = $3`; no row means [`StoreError::Conflict`];
//! unique violations, SQLSTATE 23505, become `Conflict` by constraint name), its audit events
//! are appended under the same head, then the batch commits. When a batch's approval and model
//! mutations went into its one statement and any check failed there, the batch runs again one
//! mutation at a time, so the culprit alone gets the conflict. Nothing is half-written on any
//! error.
//!
//! ## Runtime queries only
//!
//! Every statement is a runtime `sqlx::query()`: no compile-time checked macros, so building needs
//! no database and no offline query data. The migrations in `migrations/` are embedded with
//! `include_str!` and applied by [`migrate`] (and `airisk migrate`).
//!
//! ## TLS
//!
//! Built with rustls on ring (sqlx's `tls-rustls-ring-webpki`): the URL's `sslmode`
//! (`require`, `verify-ca`, `verify-full`) and `sslrootcert` work, trusting the Mozilla roots or
//! the given CA file. No OpenSSL or aws-lc is linked.
#![deny(missing_docs)]

mod batch;
mod deliveries;
mod error;
mod governance;
mod read;
mod schema;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use airisk_core::ledger::{Hash, NodeId};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, AuditQuery, AuditRepository, ChangeSet, Clock,
    GovernanceStore, Page, StoreError, StoredCheckpoint, StoredEntry, TreeHead,
};
use airisk_core::security::tenant_context::TenantId;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

pub use error::{ConnectError, MigrateError};
/// The statements the store prepares on each connection for its key lookups. Public only so that
/// the store's tests can ask PostgreSQL how it plans them; not part of the API.
#[doc(hidden)]
pub use governance::PREPARED_READS;
pub use schema::{MigrateReport, migrate, schema_version};

use crate::batch::Batcher;
use crate::error::map;
use crate::write::Work;

/// How long a pooled connection may sit idle before it is pinged again when handed out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Tuning knobs of a [`PostgresStore`]. The defaults suit a small server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Most connections the pool opens. Default 16.
    pub max_connections: u32,
    /// How long an operation waits for a free connection before it fails with
    /// [`StoreError::Unavailable`]. Default 10 s.
    pub acquire_timeout: Duration,
    /// Most events (plus mutations) one batch transaction of a tenant carries. A single request
    /// larger than this still commits whole, alone. 1 turns group commit off. Default 4096.
    pub max_batch_events: usize,
    /// Accept a login that bypasses row-level security (superuser, `BYPASSRLS`, or a member of
    /// the tables' owner). Off by default: with it, the database no longer keeps tenants apart.
    pub dangerous_allow_privileged_role: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            max_batch_events: 4096,
            dangerous_allow_privileged_role: false,
        }
    }
}

/// The PostgreSQL store: a connection pool and the per-tenant batch writer. Cheap to share behind
/// an `Arc`; one per process is the intended shape (it is the unit of group commit).
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    batcher: Arc<Batcher>,
}

impl PostgresStore {
    /// Connects to the database at `url` as the application's login and checks that the schema
    /// is there and that the login cannot bypass row-level security. Records are stamped with
    /// `clock`. The pool opens connections lazily, up to [`PostgresOptions::max_connections`].
    ///
    /// # Errors
    /// [`ConnectError::InvalidUrl`], [`ConnectError::Store`] if the server cannot be reached or
    /// refuses the login, [`ConnectError::SchemaMissing`], or [`ConnectError::PrivilegedRole`].
    pub async fn connect(
        url: &str,
        clock: Arc<dyn Clock>,
        options: PostgresOptions,
    ) -> Result<Self, ConnectError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| ConnectError::InvalidUrl {
                message: e.to_string(),
            })?
            .application_name("airisk");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection when it is handed out (a round trip before each
            // transaction) and again when it is returned. The check on return stays: it also
            // flushes the ROLLBACK of a dropped read transaction, and drops a broken connection.
            // On acquire, only a connection that sat idle for a while is pinged; a connection in
            // steady use was checked on its return moments ago, and one that broke since fails
            // its first statement, which is reported as `Unavailable` (503, retry) and closes it.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < IDLE_BEFORE_PING {
                        return Ok(true);
                    }
                    sqlx::Connection::ping(conn).await.map(|()| true)
                })
            })
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // A receipt promises durability: never run commits with synchronous_commit
                    // off, whatever the server's default.
                    sqlx::query(
                        "SELECT set_config('synchronous_commit', 'on', false) \
                         WHERE current_setting('synchronous_commit') = 'off'",
                    )
                    .execute(&mut *conn)
                    .await?;
                    // The store's statements raise nothing below an error that a caller could
                    // act on; notices would only be noise on the wire. Every execution of a
                    // prepared statement is planned for its values and the tables as they are
                    // then: a generic plan would be made once, often while the tables are
                    // nearly empty, and kept until an ANALYZE (seen with EXPLAIN: a session that
                    // had run the reads on empty tables kept a plan finding a request through an
                    // index of the tenant only after the table grew). Planning each time cost
                    // nothing measurable (pairs/s 947 and 910 against 879 and 995).
                    sqlx::query(
                        "SELECT set_config('client_min_messages', 'error', false), \
                                set_config('plan_cache_mode', 'force_custom_plan', false)",
                    )
                    .execute(&mut *conn)
                    .await?;
                    // The reads' statements, parsed once per connection.
                    let schema = sqlx::query("SELECT to_regclass('model_versions') IS NOT NULL")
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get::<bool, _>(0)?;
                    if schema {
                        sqlx::Executor::execute(&mut *conn, governance::PREPARED_READS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await
            .map_err(|e| ConnectError::Store(map(&e)))?;
        check_role(&pool, options.dangerous_allow_privileged_role).await?;
        Ok(PostgresStore {
            batcher: Arc::new(Batcher::new(
                pool.clone(),
                Arc::clone(&clock),
                options.max_batch_events,
            )),
            pool,
            clock,
        })
    }

    /// Applies the embedded migrations to the database at `admin_url` (the schema owner's URL).
    /// The same as [`migrate`]; call it at service start-up if the operator wants that.
    ///
    /// # Errors
    /// As [`migrate`].
    pub async fn migrate(admin_url: &str) -> Result<MigrateReport, MigrateError> {
        migrate(admin_url).await
    }

    /// The connection pool, for operational queries (health checks). Tenant tables read through
    /// it show no rows unless the transaction names a tenant with
    /// `set_config('airisk.tenant_id', …, true)`.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Waits for in-flight work and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Refuses a login for which row-level security would not apply.
async fn check_role(pool: &PgPool, allow: bool) -> Result<(), ConnectError> {
    let row = sqlx::query(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
                to_regclass('audit_entries') IS NOT NULL, \
                coalesce(pg_has_role(current_user, \
                    (SELECT relowner FROM pg_class WHERE oid = to_regclass('audit_entries')), \
                    'MEMBER'), false) \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| ConnectError::Store(map(&e)))?;
    let get = |i: usize| -> Result<bool, ConnectError> {
        row.try_get::<bool, _>(i)
            .map_err(|e| ConnectError::Store(map(&e)))
    };
    let role: String = row.try_get(0).map_err(|e| ConnectError::Store(map(&e)))?;
    if !get(3)? {
        return Err(ConnectError::SchemaMissing);
    }
    let why = if get(1)? {
        Some("superuser")
    } else if get(2)? {
        Some("BYPASSRLS")
    } else if get(4)? {
        Some("member of the tables' owner")
    } else {
        None
    };
    match why {
        Some(why) if !allow => Err(ConnectError::PrivilegedRole { role, why }),
        Some(why) => {
            tracing::warn!(role = %role, why, "connected with a role that bypasses row-level security");
            Ok(())
        }
        None => Ok(()),
    }
}

#[async_trait]
impl AuditRepository for PostgresStore {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError> {
        let Some(first) = events.first().map(|e| e.tenant_id().clone()) else {
            return Ok(Vec::new());
        };
        if events.iter().all(|e| e.tenant_id() == &first) {
            self.batcher
                .submit(
                    first,
                    Work {
                        mutations: Vec::new(),
                        events,
                    },
                )
                .await
        } else {
            write::append_across_tenants(&self.pool, self.clock.as_ref(), events).await
        }
    }

    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        read::tree_head(&self.pool, tenant).await
    }

    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        read::entries(&self.pool, tenant, from_seq, limit).await
    }

    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        read::nodes(&self.pool, tenant, ids).await
    }

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        read::add_checkpoint(&self.pool, tenant, &checkpoint).await
    }

    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        read::checkpoints(&self.pool, tenant, false).await
    }

    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        read::head_and_checkpoints(&self.pool, tenant).await
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(read::checkpoints(&self.pool, tenant, true).await?.pop())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        read::tenants(&self.pool).await
    }

    async fn search(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        read::search(&self.pool, tenant, query, limit).await
    }
}

#[async_trait]
impl GovernanceStore for PostgresStore {
    #[tracing::instrument(
        name = "store.commit",
        skip_all,
        fields(tenant_id = %change.tenant, mutations = change.mutations.len(), audit_records = change.audit.len())
    )]
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        change.check_tenant()?;
        if change.mutations.is_empty() && change.audit.is_empty() {
            return Ok(Vec::new());
        }
        self.batcher
            .submit(
                change.tenant,
                Work {
                    mutations: change.mutations,
                    events: change.audit,
                },
            )
            .await
    }

    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        governance::approval(&self.pool, tenant, id).await
    }

    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        governance::approval_with_subject(&self.pool, tenant, id).await
    }

    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        governance::model_with_approval(&self.pool, tenant, name.as_str(), version.as_str()).await
    }

    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        governance::approvals(&self.pool, tenant, filter, page).await
    }

    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        governance::model(&self.pool, tenant, name.as_str(), version.as_str()).await
    }

    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        governance::model_versions(&self.pool, tenant, name.as_str()).await
    }

    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        governance::prompt_versions(&self.pool, tenant, name.as_str()).await
    }

    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        governance::prompt_labels(&self.pool, tenant, name.as_str()).await
    }

    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        governance::label_moves(&self.pool, tenant, name.as_str()).await
    }

    async fn prompt_versions_and_data_keys(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<
        (
            Vec<PromptVersion>,
            Vec<airisk_core::security::envelope::WrappedDataKey>,
        ),
        StoreError,
    > {
        governance::prompt_versions_and_data_keys(&self.pool, tenant, name.as_str()).await
    }

    async fn unsealed_prompt_versions(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        governance::unsealed_prompt_versions(&self.pool, tenant, limit).await
    }

    async fn data_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
        governance::data_keys(&self.pool, tenant).await
    }

    async fn claim_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        deliveries::claim(&self.pool, claim, now).await
    }

    async fn settle_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        deliveries::settle(&self.pool, claim).await
    }

    async fn release_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        deliveries::release(&self.pool, claim).await
    }
}
