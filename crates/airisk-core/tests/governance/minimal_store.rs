//! A store that implements only what `GovernanceStore` requires: every capability it leaves out
//! (data keys, unsealed rows, the webhook replay memory) refuses, so sealing and webhook replay
//! protection fail closed on it instead of silently passing. Also the bounds a delivery claim is
//! checked against before any store sees it.

use airisk_core::governance::approval_workflow::ApprovalRequest;
use airisk_core::governance::audit_record::AuditReceipt;
use airisk_core::governance::model_registry::{ModelName, ModelVersion, ModelVersionTag};
use airisk_core::governance::prompt_registry::{LabelMove, PromptName};
use airisk_core::ports::{
    ApprovalFilter, ApprovalWithSubject, ChangeSet, DeliveryClaim, GovernanceStore, Page,
    StoreError, SystemClock,
};
use airisk_core::security::tenant_context::TenantId;
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::tenant;
use async_trait::async_trait;
use uuid::Uuid;

/// The in-memory store seen through the required methods only.
#[derive(Debug)]
struct Minimal(InMemoryStore);

#[async_trait]
impl GovernanceStore for Minimal {
    async fn commit(&self, change: ChangeSet) -> Result<Vec<AuditReceipt>, StoreError> {
        self.0.commit(change).await
    }
    async fn approval(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        self.0.approval(tenant, id).await
    }
    async fn approval_with_subject(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.0.approval_with_subject(tenant, id).await
    }
    async fn model_with_approval(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ApprovalWithSubject>, StoreError> {
        self.0.model_with_approval(tenant, name, version).await
    }
    async fn approvals(
        &self,
        tenant: &TenantId,
        filter: &ApprovalFilter,
        page: Page,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.0.approvals(tenant, filter, page).await
    }
    async fn model(
        &self,
        tenant: &TenantId,
        name: &ModelName,
        version: &ModelVersionTag,
    ) -> Result<Option<ModelVersion>, StoreError> {
        self.0.model(tenant, name, version).await
    }
    async fn model_versions(
        &self,
        tenant: &TenantId,
        name: &ModelName,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        self.0.model_versions(tenant, name).await
    }
    async fn prompt_versions(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<airisk_core::governance::prompt_registry::PromptVersion>, StoreError> {
        self.0.prompt_versions(tenant, name).await
    }
    async fn prompt_labels(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<(String, u32)>, StoreError> {
        self.0.prompt_labels(tenant, name).await
    }
    async fn label_moves(
        &self,
        tenant: &TenantId,
        name: &PromptName,
    ) -> Result<Vec<LabelMove>, StoreError> {
        self.0.label_moves(tenant, name).await
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Refused { .. }))
}

#[tokio::test]
async fn every_capability_a_store_leaves_out_refuses() {
    let store = Minimal(InMemoryStore::new(std::sync::Arc::new(SystemClock)));
    let acme = tenant("acme");
    let name = PromptName::parse("greeting").unwrap();
    assert!(refused(store.data_keys(&acme).await));
    assert!(refused(
        store.prompt_versions_and_data_keys(&acme, &name).await
    ));
    assert!(refused(store.unsealed_prompt_versions(&acme, 10).await));
    let claim = DeliveryClaim {
        tenant: acme.clone(),
        source: "mlflow:risk".to_owned(),
        delivery_id: "d-1".to_owned(),
        until: chrono::Utc::now() + chrono::Duration::minutes(5),
    };
    // Twice: a store without a replay memory must never answer "first time seen".
    assert!(refused(
        store.claim_delivery(&claim, chrono::Utc::now()).await
    ));
    assert!(refused(
        store.claim_delivery(&claim, chrono::Utc::now()).await
    ));
    assert!(refused(store.settle_delivery(&claim).await));
    assert!(refused(store.release_delivery(&claim).await));
    // The store the wrapper delegates to has all of them.
    assert!(store.0.data_keys(&acme).await.is_ok());
    assert!(
        store
            .0
            .claim_delivery(&claim, chrono::Utc::now())
            .await
            .unwrap()
    );
}

#[test]
fn a_delivery_claims_fields_are_1_to_128_bytes() {
    let claim = |source: &str, delivery_id: &str| DeliveryClaim {
        tenant: tenant("acme"),
        source: source.to_owned(),
        delivery_id: delivery_id.to_owned(),
        until: chrono::Utc::now(),
    };
    let at_limit = "s".repeat(128);
    let over = "s".repeat(129);
    assert_eq!(claim(&at_limit, &at_limit).check(), Ok(()));
    assert_eq!(claim("s", "d").check(), Ok(()));
    for (source, delivery_id) in [
        (over.as_str(), "d"),
        ("s", over.as_str()),
        ("", "d"),
        ("s", ""),
    ] {
        assert!(
            refused(claim(source, delivery_id).check()),
            "{} / {} bytes",
            source.len(),
            delivery_id.len()
        );
    }
}
