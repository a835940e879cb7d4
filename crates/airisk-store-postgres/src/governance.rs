//! Governance state: mutations (inside a batch transaction, under the tenant's head lock) and
//! reads (each in its own read-only transaction scoped to the tenant).
//!
//! Every value is stored whole as serde JSON in a `json` column (`body`), which keeps the text as
//! written, so it reads back exactly equal; key and filter columns sit next to it.

use airisk_core::governance::approval_workflow::{ApprovalRequest, Subject};
use airisk_core::governance::model_registry::ModelVersion;
use airisk_core::governance::prompt_registry::{LabelMove, PromptVersion};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, Mutation, Page, StoreError, SubjectState,
};
use airisk_core::security::tenant_context::TenantId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgConnection;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::error::{corrupt, map, to_i64};
use crate::write::{begin_for, end_read, tenant_literal};

fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Refused {
        message: format!("{what} cannot be serialised: {e}"),
    })
}

fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("stored {what} does not decode: {e}")))
}

fn conflict(what: String) -> StoreError {
    StoreError::Conflict { what }
}

/// Takes the next creation-order number of the tenant.
fn next_ord(writes: &mut u64) -> Result<i64, StoreError> {
    let ord = to_i64(*writes, "write count")?;
    *writes += 1;
    Ok(ord)
}

/// Applies one mutation. Version clashes (an UPDATE that matched no row) and unique violations
/// are [`StoreError::Conflict`].
pub(crate) async fn apply(
    conn: &mut PgConnection,
    tenant: &TenantId,
    mutation: &Mutation,
    writes: &mut u64,
) -> Result<(), StoreError> {
    if mutation.tenant() != tenant {
        return Err(StoreError::Refused {
            message: format!(
                "a write for tenant {} in a batch of {tenant}",
                mutation.tenant()
            ),
        });
    }
    let t = tenant.as_str();
    match mutation {
        Mutation::InsertApproval(r) => {
            sqlx::query(
                "INSERT INTO approval_requests \
                 (tenant_id, id, ord, version, status, subject, requested_by, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json)",
            )
            .bind(t)
            .bind(r.id())
            .bind(next_ord(writes)?)
            .bind(to_i64(r.version(), "approval version")?)
            .bind(r.status().as_str())
            .bind(to_json(r.subject(), "subject")?)
            .bind(r.requested_by().as_str())
            .bind(to_json(r, "approval request")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::UpdateApproval {
            expected_version,
            request,
        } => {
            let done = sqlx::query(
                "UPDATE approval_requests SET version = $4, status = $5, body = $6::json \
                 WHERE tenant_id = $1 AND id = $2 AND version = $3",
            )
            .bind(t)
            .bind(request.id())
            .bind(to_i64(*expected_version, "approval version")?)
            .bind(to_i64(request.version(), "approval version")?)
            .bind(request.status().as_str())
            .bind(to_json(request, "approval request")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
            if done.rows_affected() != 1 {
                return Err(conflict(format!(
                    "approval request {} changed",
                    request.id()
                )));
            }
        }
        Mutation::InsertModel(m) => {
            sqlx::query(
                "INSERT INTO model_versions (tenant_id, name, version, ord, row_version, body) \
                 VALUES ($1, $2, $3, $4, $5, $6::json)",
            )
            .bind(t)
            .bind(m.model_name().as_str())
            .bind(m.version().as_str())
            .bind(next_ord(writes)?)
            .bind(to_i64(m.row_version(), "model row version")?)
            .bind(to_json(m, "model version")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::UpdateModel {
            expected_version,
            model,
        } => {
            let done = sqlx::query(
                "UPDATE model_versions SET row_version = $5, body = $6::json \
                 WHERE tenant_id = $1 AND name = $2 AND version = $3 AND row_version = $4",
            )
            .bind(t)
            .bind(model.model_name().as_str())
            .bind(model.version().as_str())
            .bind(to_i64(*expected_version, "model row version")?)
            .bind(to_i64(model.row_version(), "model row version")?)
            .bind(to_json(model, "model version")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
            if done.rows_affected() != 1 {
                return Err(conflict(format!(
                    "model {}@{} changed",
                    model.model_name(),
                    model.version()
                )));
            }
        }
        Mutation::InsertPromptVersion(p) => {
            sqlx::query(
                "INSERT INTO prompt_versions (tenant_id, name, version, body) \
                 VALUES ($1, $2, $3, $4::json)",
            )
            .bind(t)
            .bind(p.name())
            .bind(i64::from(p.version()))
            .bind(to_json(p, "prompt version")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::SealPromptVersion(p) => seal_prompt_version(conn, t, p).await?,
        Mutation::MoveLabel {
            expected_from,
            label_move,
        } => {
            let to = i64::from(label_move.to_version);
            let done = match expected_from {
                None => sqlx::query(
                    "INSERT INTO prompt_labels (tenant_id, name, label, version) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(t)
                .bind(&label_move.name)
                .bind(&label_move.label)
                .bind(to)
                .execute(&mut *conn)
                .await
                .map_err(|e| map(&e))?,
                Some(from) => sqlx::query(
                    "UPDATE prompt_labels SET version = $4 \
                     WHERE tenant_id = $1 AND name = $2 AND label = $3 AND version = $5",
                )
                .bind(t)
                .bind(&label_move.name)
                .bind(&label_move.label)
                .bind(to)
                .bind(i64::from(*from))
                .execute(&mut *conn)
                .await
                .map_err(|e| map(&e))?,
            };
            if done.rows_affected() != 1 {
                return Err(conflict(format!("label {} moved", label_move.label)));
            }
            sqlx::query(
                "INSERT INTO label_moves (tenant_id, id, name, ord, body) \
                 VALUES ($1, $2, $3, $4, $5::json)",
            )
            .bind(t)
            .bind(label_move.id)
            .bind(&label_move.name)
            .bind(next_ord(writes)?)
            .bind(to_json(label_move, "label move")?)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::InsertDataKey(k) => {
            sqlx::query(
                "INSERT INTO data_keys (tenant_id, kid, wrapped, created_at, subject) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(t)
            .bind(k.kid.as_str())
            .bind(k.wrapped.as_deref())
            .bind(k.created_at.to_rfc3339())
            .bind(k.subject.as_ref().map(|s| s.as_str()))
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::RewrapDataKey(k) => {
            let done = sqlx::query(
                "UPDATE data_keys SET wrapped = $3 \
                 WHERE tenant_id = $1 AND kid = $2 AND wrapped IS NOT NULL",
            )
            .bind(t)
            .bind(k.kid.as_str())
            .bind(k.wrapped.as_deref())
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
            if done.rows_affected() != 1 {
                return Err(conflict(format!("data key {} is not live", k.kid)));
            }
        }
        Mutation::ShredDataKeys { .. } => {
            sqlx::query(
                "UPDATE data_keys SET wrapped = NULL, subject = NULL \
                 WHERE tenant_id = $1 AND (wrapped IS NOT NULL OR subject IS NOT NULL)",
            )
            .bind(t)
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        Mutation::ShredSubjectKeys { subject, .. } => {
            sqlx::query(
                "UPDATE data_keys SET wrapped = NULL, subject = NULL \
                 WHERE tenant_id = $1 AND subject = $2",
            )
            .bind(t)
            .bind(subject.as_str())
            .execute(conn)
            .await
            .map_err(|e| map(&e))?;
        }
        _ => {
            return Err(StoreError::Refused {
                message: "unknown mutation".to_owned(),
            });
        }
    }
    Ok(())
}

/// Seals a stored plaintext prompt version in place (`airisk keys seal-existing`): locks the
/// row, checks that it is still plaintext (else Conflict) and that its template hashes to its
/// stored digest and the new row's (else Refused), then replaces only the template and sets
/// `sealed`: the one change the `prompt_versions_append_only` trigger (migration 0006) lets
/// through. The old row version stays in the table file until `VACUUM` (docs/ENCRYPTION.md).
async fn seal_prompt_version(
    conn: &mut PgConnection,
    t: &str,
    p: &PromptVersion,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT body::text FROM prompt_versions \
         WHERE tenant_id = $1 AND name = $2 AND version = $3 FOR UPDATE",
    )
    .bind(t)
    .bind(p.name())
    .bind(i64::from(p.version()))
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| map(&e))?;
    let Some(row) = row else {
        return Err(conflict(format!(
            "prompt {}@{} is not stored",
            p.name(),
            p.version()
        )));
    };
    let body: String = row.try_get(0).map_err(|e| map(&e))?;
    let stored: PromptVersion = from_json(&body, "prompt version")?;
    if stored.is_sealed() {
        return Err(conflict(format!(
            "prompt {}@{} is sealed already",
            p.name(),
            p.version()
        )));
    }
    let digest =
        airisk_core::governance::model_registry::Sha256Digest::of(stored.template().as_bytes());
    if !p.is_sealed()
        || !digest.matches(stored.template_sha256())
        || !stored.differs_only_in_template(p)
    {
        return Err(StoreError::Refused {
            message: format!(
                "prompt {}@{}: only sealing its own plaintext template in place is allowed",
                p.name(),
                p.version()
            ),
        });
    }
    let done = sqlx::query(
        "UPDATE prompt_versions \
         SET body = (body::jsonb || jsonb_build_object('template', $4::text, 'sealed', true))::json \
         WHERE tenant_id = $1 AND name = $2 AND version = $3",
    )
    .bind(t)
    .bind(p.name())
    .bind(i64::from(p.version()))
    .bind(p.template())
    .execute(&mut *conn)
    .await
    .map_err(|e| map(&e))?;
    if done.rows_affected() != 1 {
        return Err(conflict(format!(
            "prompt {}@{} changed while it was sealed",
            p.name(),
            p.version()
        )));
    }
    Ok(())
}

/// Up to `limit` prompt versions of a tenant stored with a plaintext template, by name and
/// version.
pub(crate) async fn unsealed_prompt_versions(
    pool: &PgPool,
    tenant: &TenantId,
    limit: u32,
) -> Result<Vec<PromptVersion>, StoreError> {
    let mut q = QueryBuilder::new(
        "SELECT body::text FROM prompt_versions \
         WHERE (body::jsonb -> 'sealed') IS DISTINCT FROM 'true'::jsonb AND tenant_id = ",
    );
    q.push_bind(tenant.as_str())
        .push(" ORDER BY name, version LIMIT ")
        .push_bind(i64::from(limit));
    bodies(pool, tenant, q, "prompt version").await
}

/// The mutations of a batch as column arrays, applied by the batch's one statement
/// ([`crate::write`]) instead of one round trip each while the tenant's head is locked. Only
/// approval and model inserts and updates go this way (the mutations of registering and deciding),
/// and only when no row is touched twice in the batch ([`Bulk::fits`]): then the order in which
/// the statement applies them cannot matter, and each one's check (its version, its key) is the
/// same as in [`apply`]. Anything else goes through [`apply`], one mutation at a time, in order.
#[derive(Debug, Default)]
pub(crate) struct Bulk {
    pub(crate) approval_ins: ApprovalInserts,
    pub(crate) approval_upd: ApprovalUpdates,
    pub(crate) model_ins: ModelInserts,
    pub(crate) model_upd: ModelUpdates,
}

/// New approval requests, column by column.
#[derive(Debug, Default)]
pub(crate) struct ApprovalInserts {
    pub(crate) id: Vec<Uuid>,
    pub(crate) ord: Vec<i64>,
    pub(crate) version: Vec<i64>,
    pub(crate) status: Vec<String>,
    pub(crate) subject: Vec<String>,
    pub(crate) requested_by: Vec<String>,
    pub(crate) body: Vec<String>,
}

/// Approval requests replaced at an expected version, column by column.
#[derive(Debug, Default)]
pub(crate) struct ApprovalUpdates {
    pub(crate) id: Vec<Uuid>,
    pub(crate) expected: Vec<i64>,
    pub(crate) version: Vec<i64>,
    pub(crate) status: Vec<String>,
    pub(crate) body: Vec<String>,
}

/// New model versions, column by column.
#[derive(Debug, Default)]
pub(crate) struct ModelInserts {
    pub(crate) name: Vec<String>,
    pub(crate) version: Vec<String>,
    pub(crate) ord: Vec<i64>,
    pub(crate) row_version: Vec<i64>,
    pub(crate) body: Vec<String>,
}

/// Model versions replaced at an expected row version, column by column.
#[derive(Debug, Default)]
pub(crate) struct ModelUpdates {
    pub(crate) name: Vec<String>,
    pub(crate) version: Vec<String>,
    pub(crate) expected: Vec<i64>,
    pub(crate) row_version: Vec<i64>,
    pub(crate) body: Vec<String>,
}

/// A row a mutation writes, to find two writes of one row in a batch.
#[derive(Debug, PartialEq, Eq, Hash)]
enum RowKey {
    Approval(Uuid),
    Model(String, String),
}

impl Bulk {
    /// Whether every mutation of a batch can go into the batch's one statement: each is an
    /// approval or model insert or update of `tenant`, and no row is written twice.
    pub(crate) fn fits<'a>(
        tenant: &TenantId,
        mutations: impl IntoIterator<Item = &'a Mutation>,
    ) -> bool {
        let mut seen = std::collections::HashSet::new();
        for m in mutations {
            if m.tenant() != tenant {
                return false;
            }
            let key = match m {
                Mutation::InsertApproval(r) | Mutation::UpdateApproval { request: r, .. } => {
                    RowKey::Approval(r.id())
                }
                Mutation::InsertModel(m) | Mutation::UpdateModel { model: m, .. } => RowKey::Model(
                    m.model_name().as_str().to_owned(),
                    m.version().as_str().to_owned(),
                ),
                _ => return false,
            };
            if !seen.insert(key) {
                return false;
            }
        }
        true
    }

    /// Adds one mutation (one that [`Bulk::fits`] accepted), taking creation-order numbers from
    /// `writes` in the same order as [`apply`] would.
    pub(crate) fn add(&mut self, mutation: &Mutation, writes: &mut u64) -> Result<(), StoreError> {
        match mutation {
            Mutation::InsertApproval(r) => {
                let a = &mut self.approval_ins;
                // Everything that can fail first, so a refused mutation leaves no partial row.
                let version = to_i64(r.version(), "approval version")?;
                let subject = to_json(r.subject(), "subject")?;
                let body = to_json(r, "approval request")?;
                a.ord.push(next_ord(writes)?);
                a.id.push(r.id());
                a.version.push(version);
                a.status.push(r.status().as_str().to_owned());
                a.subject.push(subject);
                a.requested_by.push(r.requested_by().as_str().to_owned());
                a.body.push(body);
            }
            Mutation::UpdateApproval {
                expected_version,
                request,
            } => {
                let u = &mut self.approval_upd;
                let expected = to_i64(*expected_version, "approval version")?;
                let version = to_i64(request.version(), "approval version")?;
                let body = to_json(request, "approval request")?;
                u.id.push(request.id());
                u.expected.push(expected);
                u.version.push(version);
                u.status.push(request.status().as_str().to_owned());
                u.body.push(body);
            }
            Mutation::InsertModel(m) => {
                let i = &mut self.model_ins;
                let row_version = to_i64(m.row_version(), "model row version")?;
                let body = to_json(m, "model version")?;
                i.ord.push(next_ord(writes)?);
                i.name.push(m.model_name().as_str().to_owned());
                i.version.push(m.version().as_str().to_owned());
                i.row_version.push(row_version);
                i.body.push(body);
            }
            Mutation::UpdateModel {
                expected_version,
                model,
            } => {
                let u = &mut self.model_upd;
                let expected = to_i64(*expected_version, "model row version")?;
                let row_version = to_i64(model.row_version(), "model row version")?;
                let body = to_json(model, "model version")?;
                u.name.push(model.model_name().as_str().to_owned());
                u.version.push(model.version().as_str().to_owned());
                u.expected.push(expected);
                u.row_version.push(row_version);
                u.body.push(body);
            }
            _ => {
                return Err(StoreError::Refused {
                    message: "a mutation outside the bulk kinds".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// How many rows each part must write for every mutation to have held: approval inserts,
    /// approval updates, model inserts, model updates.
    pub(crate) fn expected(&self) -> [i64; 4] {
        [
            self.approval_ins.id.len(),
            self.approval_upd.id.len(),
            self.model_ins.name.len(),
            self.model_upd.name.len(),
        ]
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.expected() == [0; 4]
    }
}

/// A value as a quoted SQL literal for [`read_once`], if it is made only of characters that can
/// neither end nor escape a literal: ASCII letters, digits, `.`, `_`, `-`, `/` (every validated
/// name and version, and a UUID's text). Anything else is refused, never escaped.
fn literal(value: &str) -> Result<String, StoreError> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        Ok(format!("'{value}'"))
    } else {
        Err(StoreError::Refused {
            message: "a value outside the characters a read may inline".to_owned(),
        })
    }
}

/// The statements of `read_once`'s reads, prepared on every connection when the pool opens it
/// (`after_connect` in [`crate::PostgresStore::connect`]; a database without the schema gets
/// nothing prepared, so that `connect` can still report it as `SchemaMissing`). Sent as text, a
/// read was parsed every time; `EXECUTE` with literal arguments keeps it one simple-protocol
/// round trip and reuses the parse (the plan is made per execution: `plan_cache_mode` is
/// `force_custom_plan` on the store's connections). Each takes the tenant as `$1`; row-level
/// security still decides what it sees.
///
/// The subject's keys (`airisk_approval_with_subject`) and the request id
/// (`airisk_model_with_approval`) are taken out in a materialised CTE first: a join condition
/// applying `->>` (not leakproof) to a column would keep row-level security from using the joined
/// table's index (a scan of the tenant's whole table per read). The joins name the tenant as `$1`,
/// never as the other table's column: see `read_once`.
pub const PREPARED_READS: &str = "\
PREPARE airisk_model(text, text, text) AS \
  SELECT body::text FROM model_versions WHERE tenant_id = $1 AND name = $2 AND version = $3; \
PREPARE airisk_model_with_approval(text, text, text) AS \
  WITH m AS MATERIALIZED ( \
    SELECT body, (body->>'approval_request_id')::uuid AS request_id \
    FROM model_versions WHERE tenant_id = $1 AND name = $2 AND version = $3) \
  SELECT m.body::text, a.body::text FROM m \
  LEFT JOIN approval_requests a ON a.tenant_id = $1 AND a.id = m.request_id; \
PREPARE airisk_approval_with_subject(text, uuid) AS \
  WITH r AS MATERIALIZED ( \
    SELECT body, subject::json->>'kind' AS kind, subject::json->>'name' AS name, \
           subject::json->>'version' AS version, subject::json->>'label' AS label \
    FROM approval_requests WHERE tenant_id = $1 AND id = $2) \
  SELECT r.body::text, m.body::text, l.version FROM r \
  LEFT JOIN model_versions m \
    ON r.kind = 'model' AND m.tenant_id = $1 AND m.name = r.name AND m.version = r.version \
  LEFT JOIN prompt_labels l \
    ON r.kind = 'prompt_label' AND l.tenant_id = $1 AND l.name = r.name AND l.label = r.label";

/// Runs one read-only `select` of `tenant` in ONE round trip and returns its rows:
/// `BEGIN READ ONLY`, the tenant's `set_config`, the select and a closing `ROLLBACK` go to the
/// server as one simple-protocol query, which the server runs to its end even if the caller stops
/// waiting (so it leaves no transaction open on the connection); if one of its statements fails,
/// the rest are skipped and the connection is closed instead of pooled. A read through
/// [`begin_for`] costs two round trips (`BEGIN`, then the statement) and leaves its `ROLLBACK`
/// for the connection's return. The
/// simple protocol has no bind parameters: the `select` is an `EXECUTE` of one of
/// [`PREPARED_READS`] whose arguments are [`literal`]s and the tenant a [`tenant_literal`]. The
/// reads of a register+approve pair go this way.
///
/// The reads' joins name the tenant as a literal or parameter (`a.tenant_id = $1`) rather than
/// through the other table (`a.tenant_id = m.tenant_id`): row-level security adds its own
/// `tenant_id = current_setting('airisk.tenant_id', true)`. Against a value the planner merges
/// the two into one condition (checking `current_setting(…) = 'acme'` once) and looks the row up
/// by its primary key. Against another table's column it kept both as separate index conditions,
/// multiplied their selectivities, and, without statistics (a new database, or a table grown since
/// autovacuum's last ANALYZE), estimated a tenant at under one row, so that any index starting
/// with `tenant_id` looked as good as the primary key: it took `approval_requests_subject` or
/// `_status`, whose conditions name only the tenant, and read every one of the tenant's requests
/// to find one (measured: 12.8 million index entries read in 10 s of register+approve pairs).
async fn read_once(
    pool: &PgPool,
    tenant: &TenantId,
    select: &str,
) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
    let sql = format!(
        "BEGIN READ ONLY; SELECT set_config('airisk.tenant_id', {}, true); {select}; ROLLBACK",
        tenant_literal(tenant)?
    );
    // In a task of its own, so that it ends the same way whether or not the caller still waits.
    let pool = pool.clone();
    let mut rows = tokio::spawn(async move {
        let mut conn = pool.acquire().await.map_err(|e| map(&e))?;
        // A bare &str goes out as one simple-protocol query (several statements).
        let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await;
        if rows.is_err() {
            // A statement that failed skipped the rest, the closing ROLLBACK too: the connection
            // is inside an aborted transaction and must not go back to the pool.
            conn.close_on_drop();
        }
        rows.map_err(|e| map(&e))
    })
    .await
    .map_err(|e| StoreError::Unavailable {
        message: format!("a read stopped: {e}"),
    })??;
    // The first row is set_config's.
    if rows.is_empty() {
        return Err(corrupt(
            "a tenant's read returned no set_config row".to_owned(),
        ));
    }
    rows.remove(0);
    Ok(rows)
}

/// Runs a query that returns `body::text` rows, in a read-only transaction of `tenant`, and
/// decodes each.
async fn bodies<T: DeserializeOwned>(
    pool: &PgPool,
    tenant: &TenantId,
    mut query: QueryBuilder<'_, Postgres>,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = query
        .build()
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| map(&e))?;
    end_read(tx);
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(|e| map(&e))?;
            from_json(&text, what)
        })
        .collect()
}

pub(crate) async fn approval(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ApprovalRequest>, StoreError> {
    let mut q = QueryBuilder::new("SELECT body::text FROM approval_requests WHERE tenant_id = ");
    q.push_bind(tenant.as_str())
        .push(" AND id = ")
        .push_bind(id);
    Ok(bodies(pool, tenant, q, "approval request").await?.pop())
}

/// One approval request and the stored state of its subject, in one statement ([`read_once`]):
/// the request's row, LEFT JOINed to the model version or the prompt label its `subject` column
/// names.
pub(crate) async fn approval_with_subject(
    pool: &PgPool,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ApprovalWithSubject>, StoreError> {
    let row = read_once(
        pool,
        tenant,
        &format!(
            // The subject's keys are taken out in a materialised CTE first: a join condition
            // applying `->>` (not leakproof) to a column would keep row-level security from
            // using the joined table's index (a scan of the tenant's whole table per read).
            "EXECUTE airisk_approval_with_subject({}, {})",
            tenant_literal(tenant)?,
            literal(&id.to_string())?
        ),
    )
    .await?
    .into_iter()
    .next();
    let Some(row) = row else {
        return Ok(None);
    };
    let request: String = row.try_get(0).map_err(|e| map(&e))?;
    let request: ApprovalRequest = from_json(&request, "approval request")?;
    let subject = match request.subject() {
        Subject::Model { name, version } => {
            let body: Option<String> = row.try_get(1).map_err(|e| map(&e))?;
            let model = body
                .map(|b| from_json::<ModelVersion>(&b, "model version"))
                .transpose()?;
            if let Some(m) = &model
                && (m.model_name() != name || m.version() != version)
            {
                return Err(corrupt(format!(
                    "approval {id} joined model {}@{} instead of {name}@{version}",
                    m.model_name(),
                    m.version()
                )));
            }
            SubjectState::Model(model.map(Box::new))
        }
        Subject::PromptLabel { label, .. } => {
            let version: Option<i64> = row.try_get(2).map_err(|e| map(&e))?;
            let points_at = version
                .map(|v| {
                    u32::try_from(v)
                        .map_err(|_| corrupt(format!("label {label} points at version {v}")))
                })
                .transpose()?;
            SubjectState::PromptLabel { points_at }
        }
    };
    Ok(Some(ApprovalWithSubject { request, subject }))
}

/// One model version and its approval request, in one statement ([`read_once`]): the model's row
/// LEFT JOINed to the request its body's `approval_request_id` names.
pub(crate) async fn model_with_approval(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
    version: &str,
) -> Result<Option<ApprovalWithSubject>, StoreError> {
    let row = read_once(
        pool,
        tenant,
        &format!(
            "EXECUTE airisk_model_with_approval({}, {}, {})",
            tenant_literal(tenant)?,
            literal(name)?,
            literal(version)?
        ),
    )
    .await?
    .into_iter()
    .next();
    let Some(row) = row else {
        return Ok(None);
    };
    let model: String = row.try_get(0).map_err(|e| map(&e))?;
    let model: ModelVersion = from_json(&model, "model version")?;
    let request: Option<String> = row.try_get(1).map_err(|e| map(&e))?;
    let Some(request) = request else {
        return Err(corrupt(format!(
            "model {name}@{version} names a missing approval {}",
            model.approval_request_id()
        )));
    };
    let request: ApprovalRequest = from_json(&request, "approval request")?;
    Ok(Some(ApprovalWithSubject {
        request,
        subject: SubjectState::Model(Some(Box::new(model))),
    }))
}

pub(crate) async fn approvals(
    pool: &PgPool,
    tenant: &TenantId,
    filter: &ApprovalFilter,
    page: Page,
) -> Result<Vec<ApprovalRequest>, StoreError> {
    let mut q = QueryBuilder::new("SELECT body::text FROM approval_requests WHERE tenant_id = ");
    q.push_bind(tenant.as_str());
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(subject) = &filter.subject {
        q.push(" AND subject = ")
            .push_bind(to_json(subject, "subject")?);
    }
    if let Some(actor) = &filter.requested_by {
        q.push(" AND requested_by = ")
            .push_bind(actor.as_str().to_owned());
    }
    if let Some(actor) = &filter.not_requested_by {
        q.push(" AND requested_by <> ")
            .push_bind(actor.as_str().to_owned());
    }
    q.push(" ORDER BY ord LIMIT ")
        .push_bind(i64::from(page.limit.min(1000)))
        .push(" OFFSET ")
        .push_bind(i64::try_from(page.offset).unwrap_or(i64::MAX));
    bodies(pool, tenant, q, "approval request").await
}

pub(crate) async fn model(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
    version: &str,
) -> Result<Option<ModelVersion>, StoreError> {
    let rows = read_once(
        pool,
        tenant,
        &format!(
            "EXECUTE airisk_model({}, {}, {})",
            tenant_literal(tenant)?,
            literal(name)?,
            literal(version)?
        ),
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let body: String = row.try_get(0).map_err(|e| map(&e))?;
    from_json(&body, "model version").map(Some)
}

/// The bodies of one named object's rows of `table` (a model's versions, a prompt's versions or
/// label moves), in `order`. Both are fixed names from this module, never input.
async fn bodies_by_name<T: DeserializeOwned>(
    pool: &PgPool,
    tenant: &TenantId,
    table: &'static str,
    name: &str,
    order: &'static str,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut q = QueryBuilder::new(format!("SELECT body::text FROM {table} WHERE tenant_id = "));
    q.push_bind(tenant.as_str())
        .push(" AND name = ")
        .push_bind(name.to_owned())
        .push(format!(" ORDER BY {order}"));
    bodies(pool, tenant, q, what).await
}

pub(crate) async fn model_versions(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<ModelVersion>, StoreError> {
    bodies_by_name(pool, tenant, "model_versions", name, "ord", "model version").await
}

pub(crate) async fn prompt_versions(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<PromptVersion>, StoreError> {
    bodies_by_name(
        pool,
        tenant,
        "prompt_versions",
        name,
        "version",
        "prompt version",
    )
    .await
}

pub(crate) async fn label_moves(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<LabelMove>, StoreError> {
    bodies_by_name(pool, tenant, "label_moves", name, "ord", "label move").await
}

pub(crate) async fn prompt_labels(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
) -> Result<Vec<(String, u32)>, StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = sqlx::query(
        "SELECT label, version FROM prompt_labels WHERE tenant_id = $1 AND name = $2 \
         ORDER BY label",
    )
    .bind(tenant.as_str())
    .bind(name)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    end_read(tx);
    rows.iter()
        .map(|row| {
            let label: String = row.try_get(0).map_err(|e| map(&e))?;
            let version: i64 = row.try_get(1).map_err(|e| map(&e))?;
            let version = u32::try_from(version)
                .map_err(|_| corrupt(format!("label {label} points at version {version}")))?;
            Ok((label, version))
        })
        .collect()
}

/// Every version of a prompt and the tenant's data keys, from one read-only transaction.
pub(crate) async fn prompt_versions_and_data_keys(
    pool: &PgPool,
    tenant: &TenantId,
    name: &str,
) -> Result<
    (
        Vec<PromptVersion>,
        Vec<airisk_core::security::envelope::WrappedDataKey>,
    ),
    StoreError,
> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let rows = sqlx::query(
        "SELECT body::text FROM prompt_versions WHERE tenant_id = $1 AND name = $2 \
         ORDER BY version",
    )
    .bind(tenant.as_str())
    .bind(name)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| map(&e))?;
    let keys = data_keys_in(&mut tx, tenant).await?;
    end_read(tx);
    let versions = rows
        .iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(|e| map(&e))?;
            from_json(&text, "prompt version")
        })
        .collect::<Result<_, _>>()?;
    Ok((versions, keys))
}

/// Every data key of a tenant, oldest first.
pub(crate) async fn data_keys(
    pool: &PgPool,
    tenant: &TenantId,
) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
    let mut tx = begin_for(pool, tenant, true).await?;
    let keys = data_keys_in(&mut tx, tenant).await?;
    end_read(tx);
    Ok(keys)
}

/// Every data key of a tenant, oldest first, inside the caller's transaction.
async fn data_keys_in(
    conn: &mut PgConnection,
    tenant: &TenantId,
) -> Result<Vec<airisk_core::security::envelope::WrappedDataKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT kid, wrapped, created_at, subject FROM data_keys WHERE tenant_id = $1 \
         ORDER BY created_at, kid",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| map(&e))?;
    rows.iter()
        .map(|row| {
            let kid: String = row.try_get(0).map_err(|e| map(&e))?;
            let wrapped: Option<String> = row.try_get(1).map_err(|e| map(&e))?;
            let created_at: String = row.try_get(2).map_err(|e| map(&e))?;
            let subject: Option<String> = row.try_get(3).map_err(|e| map(&e))?;
            Ok(airisk_core::security::envelope::WrappedDataKey {
                tenant_id: tenant.clone(),
                kid: airisk_core::security::encryption::EncryptionKeyId::parse(&kid)
                    .map_err(|e| corrupt(format!("stored data key id: {e}")))?,
                wrapped,
                created_at: chrono::DateTime::parse_from_rfc3339(&created_at)
                    .map_err(|e| corrupt(format!("stored data key time: {e}")))?
                    .with_timezone(&chrono::Utc),
                subject: subject
                    .as_deref()
                    .map(airisk_core::security::data_subject::SubjectPseudonym::parse)
                    .transpose()
                    .map_err(|e| corrupt(format!("stored data key subject: {e}")))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use airisk_core::governance::approval_request::{
        ApprovalRequest, NewApprovalRequest, RequestedSubject,
    };
    use airisk_core::ports::Mutation;
    use airisk_core::security::rbac::Role;
    use airisk_core::security::tenant_context::{ActorId, Principal, TenantId};

    use super::{Bulk, literal};

    fn request(tenant: &str) -> ApprovalRequest {
        let admin = Principal::human(
            ActorId::parse("ada@bank.example").unwrap(),
            TenantId::parse(tenant).unwrap(),
            Role::Admin,
        );
        ApprovalRequest::open(
            uuid::Uuid::now_v7(),
            &admin,
            NewApprovalRequest {
                subject: RequestedSubject::Model {
                    name: "credit-scoring".into(),
                    version: "1.0".into(),
                },
                justification: "quarterly refresh".into(),
                required_approvals: 1,
                expires_in: None,
            },
            chrono::Utc::now(),
        )
        .unwrap()
    }

    /// A batch's approval and model writes go into its one statement only when each is of the
    /// batch's tenant and no row is written twice; an empty bulk is empty, one with a row is not.
    #[test]
    fn bulk_takes_each_row_once_and_only_of_its_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let (a, b) = (request("acme"), request("acme"));
        let insert = |r: &ApprovalRequest| Mutation::InsertApproval(r.clone());
        let update = |r: &ApprovalRequest| Mutation::UpdateApproval {
            expected_version: r.version(),
            request: r.clone(),
        };
        assert!(Bulk::fits(&acme, &[]));
        assert!(Bulk::fits(&acme, &[insert(&a)]));
        assert!(Bulk::fits(&acme, &[insert(&a), update(&b)]));
        assert!(
            !Bulk::fits(&acme, &[insert(&a), update(&a)]),
            "one row twice"
        );
        assert!(
            !Bulk::fits(&acme, &[insert(&request("globex"))]),
            "another tenant"
        );

        let mut bulk = Bulk::default();
        assert!(bulk.is_empty());
        let mut writes = 0;
        bulk.add(&insert(&a), &mut writes).unwrap();
        assert!(!bulk.is_empty());
        assert_eq!(bulk.expected(), [1, 0, 0, 0]);
    }

    /// Only names, versions and UUIDs are inlined into a read, quoted; anything that could end
    /// or escape the literal, or nothing at all, is refused rather than escaped.
    #[test]
    fn only_plain_names_are_inlined_as_literals() {
        assert_eq!(
            literal("credit-risk_pd/1.0").unwrap(),
            "'credit-risk_pd/1.0'"
        );
        assert_eq!(
            literal("0193a3c1-7d2e-7c4b-9f1e-2a3b4c5d6e7f").unwrap(),
            "'0193a3c1-7d2e-7c4b-9f1e-2a3b4c5d6e7f'"
        );
        for refused in ["", "a'b", "a\\b", "a b", "x;--", "é", "a\0b", "$$"] {
            assert!(literal(refused).is_err(), "{refused:?} was inlined");
        }
    }
}
