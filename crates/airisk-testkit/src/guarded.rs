//! [`Guarded`]: a store that keeps its test resource (a temporary directory, a test database)
//! alive for as long as it lives, for conformance factories that hand out only the store.

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::governance::model_registry::ModelVersion;
use airisk_core::governance::prompt_registry::{LabelMove, PromptVersion};
use airisk_core::ledger::{Hash, NodeId};
use airisk_core::ports::{
    ApprovalFilter, AuditQuery, AuditRepository, ChangeSet, GovernanceStore, Page, StoreError,
    StoredCheckpoint, StoredEntry, TreeHead,
};
use airisk_core::security::envelope::WrappedDataKey;
use airisk_core::security::tenant_context::TenantId;
use async_trait::async_trait;
use uuid::Uuid;

/// `store` with `guard` held beside it: every port method is the store's own (each one is passed
/// through, the trait's defaulted ones included, so the store's overrides are what runs). The
/// store drops before its guard, so it closes before the directory or database goes.
#[derive(Debug)]
pub struct Guarded<S, G> {
    // Field order matters: fields drop in declaration order.
    store: S,
    _guard: G,
}

impl<S, G> Guarded<S, G> {
    /// `store`, keeping `guard` alive as long as it lives.
    pub fn new(store: S, guard: G) -> Self {
        Guarded {
            store,
            _guard: guard,
        }
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
        self.store.commit(change).await
    }
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        self.store.approval(tenant, id).await
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
        name: &str,
        version: &str,
    ) -> Result<Option<ModelVersion>, StoreError> {
        self.store.model(tenant, name, version).await
    }
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        self.store.model_versions(tenant, name).await
    }
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        self.store.prompt_versions(tenant, name).await
    }
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        self.store.prompt_labels(tenant, name).await
    }
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<LabelMove>, StoreError> {
        self.store.label_moves(tenant, name).await
    }
    async fn prompt_versions_and_data_keys(
        &self,
        tenant: &TenantId,
        name: &str,
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
