//! [`Guarded`]: a store that keeps its test resource (a temporary directory, a test database)
//! alive for as long as it lives, for conformance factories that hand out only the store; and,
//! with [`Guarded::before_commit`], a store with a fault injected ahead of each commit.

use std::future::Future;
use std::pin::Pin;

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName, PromptVersion};
use airisk_core::ledger::{Hash, NodeId};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, AuditQuery, AuditRepository, ChangeSet, GovernanceStore,
    Page, StoreError, StoredCheckpoint, StoredEntry, TreeHead,
};
use airisk_core::security::envelope::WrappedDataKey;
use airisk_core::security::tenant_context::TenantId;
use async_trait::async_trait;
use uuid::Uuid;

/// The future a [`BeforeCommit`] hook returns.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// What [`Guarded::before_commit`] runs ahead of each commit: given the store and the change set
/// about to be committed, it may act on the store first (another writer's change, say); an
/// error it returns is the commit's, and the change set is then not committed. Make one with
/// [`before_commit`].
pub type BeforeCommit =
    Box<dyn for<'a> Fn(&'a dyn GovernanceStore, &'a ChangeSet) -> HookFuture<'a> + Send + Sync>;

/// `hook` as a [`BeforeCommit`] (a closure passed here has its argument and return types
/// inferred from this signature).
pub fn before_commit<F>(hook: F) -> BeforeCommit
where
    F: for<'a> Fn(&'a dyn GovernanceStore, &'a ChangeSet) -> HookFuture<'a> + Send + Sync + 'static,
{
    Box::new(hook)
}

/// `store` with `guard` held beside it: every port method is the store's own (each one is passed
/// through, the trait's defaulted ones included, so the store's overrides are what runs), after
/// the hook of [`Guarded::before_commit`] for a commit, when one is set. The store drops before
/// its guard, so it closes before the directory or database goes.
pub struct Guarded<S, G> {
    // Field order matters: fields drop in declaration order.
    store: S,
    before_commit: Option<BeforeCommit>,
    _guard: G,
}

impl<S: std::fmt::Debug, G: std::fmt::Debug> std::fmt::Debug for Guarded<S, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("store", &self.store)
            .field("before_commit", &self.before_commit.is_some())
            .field("guard", &self._guard)
            .finish()
    }
}

impl<S, G> Guarded<S, G> {
    /// `store`, keeping `guard` alive as long as it lives.
    pub fn new(store: S, guard: G) -> Self {
        Guarded {
            store,
            before_commit: None,
            _guard: guard,
        }
    }

    /// Runs `hook` ahead of every [`GovernanceStore::commit`] (a fault injected between a
    /// service's read and its write, for example); the commit goes on only if it returns `Ok`.
    #[must_use]
    pub fn before_commit(mut self, hook: BeforeCommit) -> Self {
        self.before_commit = Some(hook);
        self
    }

    /// The store itself.
    pub fn store(&self) -> &S {
        &self.store
    }
}

#[async_trait]
impl<S, G> AuditRepository for Guarded<S, G>
where
    S: AuditRepository,
    G: Send + Sync + std::fmt::Debug,
{
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError> {
        self.store.append(events).await
    }
    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        self.store.tree_head(tenant).await
    }
    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.store.entries(tenant, from_seq, limit).await
    }
    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        self.store.nodes(tenant, ids).await
    }
    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.store.add_checkpoint(tenant, checkpoint).await
    }
    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.store.checkpoints(tenant).await
    }
    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.store.latest_checkpoint(tenant).await
    }
    async fn head_and_checkpoints(
        &self,
        tenant: &TenantId,
    ) -> Result<(TreeHead, Vec<StoredCheckpoint>), StoreError> {
        self.store.head_and_checkpoints(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.store.tenants().await
    }
    async fn search(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        self.store.search(tenant, query, limit).await
    }
}

#[async_trait]
impl<S, G> GovernanceStore for Guarded<S, G>
where
    S: GovernanceStore,
    G: Send + Sync + std::fmt::Debug,
{
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        if let Some(hook) = &self.before_commit {
            let store: &dyn GovernanceStore = &self.store;
            hook(store, &change).await?;
        }
        self.store.commit(change).await
    }
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        self.store.approval(tenant, id).await
    }
    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.store.approval_with_subject(tenant, id).await
    }
    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.store.model_with_approval(tenant, name, version).await
    }
    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.store.approvals(tenant, filter, page).await
    }
    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        self.store.model(tenant, name, version).await
    }
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        self.store.model_versions(tenant, name).await
    }
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        self.store.prompt_versions(tenant, name).await
    }
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        self.store.prompt_labels(tenant, name).await
    }
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        self.store.label_moves(tenant, name).await
    }
    async fn prompt_versions_and_data_keys(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<(Vec<PromptVersion>, Vec<WrappedDataKey>), StoreError> {
        self.store.prompt_versions_and_data_keys(tenant, name).await
    }
    async fn unsealed_prompt_versions(
        &self,
        tenant: &TenantId,
        limit: u32,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        self.store.unsealed_prompt_versions(tenant, limit).await
    }
    async fn data_keys(&self, tenant: &TenantId) -> Result<Vec<WrappedDataKey>, StoreError> {
        self.store.data_keys(tenant).await
    }
    async fn claim_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.store.claim_delivery(claim, now).await
    }
    async fn settle_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        self.store.settle_delivery(claim).await
    }
    async fn release_delivery(
        &self,
        claim: &airisk_core::ports::DeliveryClaim,
    ) -> Result<(), StoreError> {
        self.store.release_delivery(claim).await
    }
}
