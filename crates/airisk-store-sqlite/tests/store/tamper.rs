//! Someone with the file drops the triggers and changes history: `AuditLogger::verify` names
//! what was changed.

use std::sync::Arc;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_verification::Problem;
use airisk_core::ledger::{Frontier, LedgerName, LedgerSigner, leaf_hash};
use airisk_core::ports::{AuditRepository, SystemClock, UuidV7Generator};
use airisk_store_sqlite::SqliteStore;

use crate::support::{TempDb, append_n, tenant};

const SIZE: u64 = 10;

struct Ledger {
    db: TempDb,
    logger: AuditLogger,
    signer: Arc<LedgerSigner>,
    /// The checkpoint at size 10, as an auditor would keep it away from the operator.
    kept: String,
}

async fn ledger() -> Ledger {
    let db = TempDb::new();
    let store: Arc<dyn AuditRepository> = Arc::new(db.open());
    let name = LedgerName::parse("bank.example/audit").unwrap();
    let signer = Arc::new(LedgerSigner::generate(name.clone()).unwrap());
    let logger = AuditLogger::new(
        Arc::clone(&store),
        Arc::new(UuidV7Generator),
        Arc::new(SystemClock),
        name,
        Some(Arc::clone(&signer)),
        CheckpointPolicy {
            every_entries: None,
            every_interval: None,
        },
    );
    append_n(store.as_ref(), "acme", SIZE).await;
    let kept = logger.checkpoint(&tenant("acme")).await.unwrap().note;
    Ledger {
        db,
        logger,
        signer,
        kept,
    }
}

impl Ledger {
    async fn verify(&self, kept: bool) -> Option<Problem> {
        let verifier = self.signer.verifier();
        let report = self
            .logger
            .verify(
                &tenant("acme"),
                Some(&verifier),
                kept.then_some(self.kept.as_str()),
                |_, _| {},
            )
            .await
            .unwrap();
        report.problem
    }

    /// A raw connection with the trigger wall taken down.
    fn attacker(&self) -> rusqlite::Connection {
        let raw = self.db.raw();
        raw.execute_batch(
            "DROP TRIGGER audit_entries_no_update;
             DROP TRIGGER audit_entries_no_delete;
             DROP TRIGGER audit_nodes_no_delete;
             DROP TRIGGER audit_checkpoints_no_delete;
             DROP TRIGGER audit_heads_only_grow;",
        )
        .unwrap();
        raw
    }

    fn leaf(raw: &rusqlite::Connection, seq: u64) -> (Vec<u8>, Vec<u8>) {
        raw.query_row(
            "SELECT leaf, leaf_hash FROM audit_entries WHERE tenant_id = 'acme' AND seq = ?1",
            [seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
    }

    fn write(raw: &rusqlite::Connection, seq: u64, leaf: &[u8], hash: &[u8]) {
        raw.execute(
            "UPDATE audit_entries SET leaf = ?2, leaf_hash = ?3 WHERE tenant_id = 'acme' AND seq = ?1",
            rusqlite::params![seq as i64, leaf, hash],
        )
        .unwrap();
    }
}

fn edit(leaf: &[u8]) -> Vec<u8> {
    String::from_utf8(leaf.to_vec())
        .unwrap()
        .replace("alice.approver", "mallory.approv")
        .into_bytes()
}

#[tokio::test]
async fn an_untouched_ledger_verifies() {
    let l = ledger().await;
    assert_eq!(l.verify(true).await, None);
}

#[tokio::test]
async fn a_changed_leaf_byte_is_named() {
    let l = ledger().await;
    let raw = l.attacker();
    let (leaf, hash) = Ledger::leaf(&raw, 4);
    Ledger::write(&raw, 4, &edit(&leaf), &hash);
    let problem = l.verify(false).await.unwrap();
    assert_eq!(problem, Problem::LeafHashMismatch { seq: 4 });
    assert_eq!(problem.seq(), Some(4));
}

#[tokio::test]
async fn a_changed_leaf_with_a_recomputed_hash_is_caught_by_the_signed_root() {
    let l = ledger().await;
    let raw = l.attacker();
    let (leaf, _) = Ledger::leaf(&raw, 4);
    let forged = edit(&leaf);
    Ledger::write(&raw, 4, &forged, leaf_hash(&forged).as_bytes());
    let problem = l.verify(false).await.unwrap();
    assert!(
        matches!(problem, Problem::RootMismatch { size: SIZE, .. }),
        "{problem:?}"
    );
}

#[tokio::test]
async fn a_deleted_row_is_named() {
    let l = ledger().await;
    let raw = l.attacker();
    raw.execute("DELETE FROM audit_entries WHERE seq = 4", [])
        .unwrap();
    let problem = l.verify(false).await.unwrap();
    assert_eq!(
        problem,
        Problem::Gap {
            expected_seq: 4,
            found_seq: 5
        }
    );
}

#[tokio::test]
async fn two_swapped_rows_are_named() {
    let l = ledger().await;
    let raw = l.attacker();
    let (leaf2, hash2) = Ledger::leaf(&raw, 2);
    let (leaf7, hash7) = Ledger::leaf(&raw, 7);
    Ledger::write(&raw, 2, &leaf7, &hash7);
    Ledger::write(&raw, 7, &leaf2, &hash2);
    let problem = l.verify(false).await.unwrap();
    assert!(
        matches!(problem, Problem::MisplacedLeaf { seq: 2, .. }),
        "{problem:?}"
    );
}

#[tokio::test]
async fn removed_tail_rows_disagree_with_the_head() {
    let l = ledger().await;
    let raw = l.attacker();
    raw.execute("DELETE FROM audit_entries WHERE seq >= 8", [])
        .unwrap();
    let problem = l.verify(false).await.unwrap();
    assert!(
        matches!(
            problem,
            Problem::HeadMismatch { .. } | Problem::Truncated { .. }
        ),
        "{problem:?}"
    );
}

#[tokio::test]
async fn a_consistent_truncation_is_caught_only_by_a_kept_checkpoint() {
    // The attacker cuts the ledger to 6 entries and rewrites everything to match, as restoring an
    // old backup would: nothing inside the file disagrees any more.
    let l = ledger().await;
    let raw = l.attacker();
    let hashes: Vec<_> = (0..6)
        .map(|seq| airisk_core::ledger::Hash::from_slice(&Ledger::leaf(&raw, seq).1).unwrap())
        .collect();
    let mut frontier = Frontier::new();
    for hash in &hashes {
        frontier.append(*hash).unwrap();
    }
    raw.execute_batch(
        "DELETE FROM audit_entries WHERE seq >= 6;
         DELETE FROM audit_nodes WHERE (idx + 1) << level > 6;
         DELETE FROM audit_checkpoints WHERE size > 6;",
    )
    .unwrap();
    raw.execute(
        "UPDATE audit_heads SET size = 6, frontier = ?1 WHERE tenant_id = 'acme'",
        [frontier.to_bytes()],
    )
    .unwrap();
    drop(raw);

    assert_eq!(
        l.verify(false).await,
        None,
        "invisible without a kept checkpoint"
    );
    assert_eq!(
        l.verify(true).await,
        Some(Problem::Truncated {
            kept_size: SIZE,
            ledger_size: 6
        })
    );
}

#[tokio::test]
async fn the_store_itself_reads_a_tampered_file_without_failing() {
    // Reads return what is stored (verify judges it); only the writer refuses to extend a ledger
    // whose rows disagree with its head.
    let l = ledger().await;
    let raw = l.attacker();
    raw.execute("DELETE FROM audit_entries WHERE seq = 9", [])
        .unwrap();
    let store = SqliteStore::open(&l.db.url(), Arc::new(SystemClock)).unwrap();
    assert_eq!(
        store.entries(&tenant("acme"), 0, 100).await.unwrap().len(),
        9
    );
    assert_eq!(store.tree_head(&tenant("acme")).await.unwrap().size, SIZE);
}

#[tokio::test]
async fn a_row_planted_beyond_the_head_is_named_even_though_verify_reads_up_to_the_head() {
    // Verify checks the snapshot up to the head it read, so appends made meanwhile are not
    // alarms; a row beyond the head that no head covers is still reported.
    let l = ledger().await;
    let raw = l.db.raw();
    let (leaf, hash) = Ledger::leaf(&raw, SIZE - 1);
    raw.execute(
        "INSERT INTO audit_entries (tenant_id, seq, leaf, leaf_hash) VALUES ('acme', ?1, ?2, ?3)",
        rusqlite::params![SIZE as i64, leaf, hash],
    )
    .unwrap();
    let problem = l.verify(false).await.unwrap();
    assert!(
        matches!(&problem, Problem::HeadMismatch { detail } if detail.contains("beyond the tree head")),
        "{problem:?}"
    );
}
