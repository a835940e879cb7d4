//! The conformance suite against the in-memory store.

use std::sync::Arc;

use airisk_core::ports::{AuditRepository, Clock};
use airisk_testkit::InMemoryStore;

airisk_testkit::audit_repository_conformance!(|clock: Arc<dyn Clock>| async move {
    Arc::new(InMemoryStore::new(clock)) as Arc<dyn AuditRepository>
});

mod governance {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
    use airisk_testkit::InMemoryStore;

    airisk_testkit::governance_store_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(InMemoryStore::new(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });
}

/// Verification under concurrent appends: no false alarm, and a real tampering still named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_sees_one_snapshot_under_concurrent_appends() {
    use airisk_core::ports::SystemClock;

    let store = InMemoryStore::new(Arc::new(SystemClock));
    let back_door = store.clone();
    let tamper: airisk_testkit::conformance::Tamper = Arc::new(move |tenant, seq| {
        let store = back_door.clone();
        Box::pin(async move {
            let mut leaf = store
                .entries(&tenant, seq, 1)
                .await
                .ok()
                .and_then(|mut e| e.pop())
                .map(|e| e.leaf)
                .unwrap_or_default();
            leaf.push(b' ');
            store.dangerous_overwrite_leaf(&tenant, seq, leaf);
        })
    });
    airisk_testkit::conformance::verification_sees_one_snapshot_under_concurrent_appends(
        Arc::new(store),
        tamper,
    )
    .await;
}

mod sealing {
    use std::sync::Arc;

    use airisk_core::ports::{AuditRepository, Clock, GovernanceStore};
    use airisk_testkit::InMemoryStore;

    airisk_testkit::sealing_conformance!(|clock: Arc<dyn Clock>| async move {
        let store = Arc::new(InMemoryStore::new(clock));
        (
            store.clone() as Arc<dyn GovernanceStore>,
            store as Arc<dyn AuditRepository>,
        )
    });

    #[tokio::test]
    async fn a_store_that_keeps_refusing_a_seal_stops_the_run() {
        use airisk_testkit::fixtures::ManualClock;
        use airisk_testkit::guarded::Guarded;
        use airisk_testkit::sealing_conformance::refuse_seals;

        let clock = Arc::new(ManualClock::new());
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let store = Guarded::new(InMemoryStore::new(clock.clone()), ())
            .before_commit(refuse_seals(attempts.clone()));
        airisk_testkit::sealing_conformance::a_store_that_keeps_refusing_a_seal_stops_the_run(
            Arc::new(store),
            attempts,
            clock,
        )
        .await;
    }

    #[tokio::test]
    async fn a_row_sealed_by_another_run_meanwhile_is_counted_and_left_alone() {
        use airisk_testkit::fixtures::ManualClock;
        use airisk_testkit::guarded::Guarded;
        use airisk_testkit::sealing_conformance::seal_first_row_elsewhere;

        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(
            Guarded::new(InMemoryStore::new(clock.clone()), ())
                .before_commit(seal_first_row_elsewhere()),
        );
        airisk_testkit::sealing_conformance::a_row_sealed_by_another_run_meanwhile_is_counted_and_left_alone(
            store.clone(),
            store,
            clock,
        )
        .await;
    }
}
