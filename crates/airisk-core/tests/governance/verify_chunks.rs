//! `AuditLogger::verify` checks a page in chunks of `VERIFY_CHUNK` entries on several threads and
//! joins their subtrees: these tests put problems on both sides of chunk boundaries, several at
//! once, and read pages of odd sizes, and check that the first bad entry is still the one named
//! and that an intact ledger's root is the RFC 6962 root computed from scratch.

use std::sync::Arc;

use airisk_core::governance::audit_logger::{AuditLogger, CheckpointPolicy};
use airisk_core::governance::audit_record::{AuditEvent, AuditReceipt};
use airisk_core::governance::audit_verification::{Problem, VERIFY_CHUNK, VerifyReport};
use airisk_core::ledger::{self, Hash, LedgerName, LedgerSigner, NodeId};
use airisk_core::ports::{
    AuditRepository, StoreError, StoredCheckpoint, StoredEntry, TreeHead, UuidV7Generator,
};
use airisk_core::security::tenant_context::TenantId;
use airisk_testkit::InMemoryStore;
use airisk_testkit::fixtures::{ManualClock, tenant};

use crate::support::finishes;

/// A little over four chunks: every chunk boundary up to 4 * VERIFY_CHUNK is inside the ledger.
const ENTRIES: u64 = 4 * VERIFY_CHUNK + 777;

struct Ledger {
    store: InMemoryStore,
    logger: AuditLogger,
    signer: Arc<LedgerSigner>,
}

fn name() -> LedgerName {
    LedgerName::parse("airisk.test/chunks").unwrap()
}

fn event(n: u64) -> AuditEvent {
    crate::support::approval_event(n, serde_json::json!({"n": n})).unwrap()
}

/// `entries` records, with a signed checkpoint after each size in `checkpoints_at` (ascending).
async fn ledger(entries: u64, checkpoints_at: &[u64]) -> Ledger {
    let clock = Arc::new(ManualClock::new());
    let store = InMemoryStore::new(clock.clone());
    let signer = Arc::new(LedgerSigner::generate(name()).unwrap());
    let logger = AuditLogger::new(
        Arc::new(store.clone()),
        Arc::new(UuidV7Generator),
        clock,
        name(),
        Some(signer.clone()),
        CheckpointPolicy {
            every_entries: None,
            every_interval: None,
        },
    );
    let mut stops: Vec<u64> = checkpoints_at.to_vec();
    stops.push(entries);
    let mut size = 0;
    for stop in stops {
        while size < stop {
            let batch = (stop - size).min(1_000);
            logger
                .append((size..size + batch).map(event).collect())
                .await
                .unwrap();
            size += batch;
        }
        if size < entries || checkpoints_at.contains(&size) {
            logger.checkpoint(&tenant("acme")).await.unwrap();
        }
    }
    Ledger {
        store,
        logger,
        signer,
    }
}

async fn verify_with(repo: Arc<dyn AuditRepository>, signer: &LedgerSigner) -> VerifyReport {
    let logger = AuditLogger::new(
        repo,
        Arc::new(UuidV7Generator),
        Arc::new(ManualClock::new()),
        name(),
        None,
        CheckpointPolicy::default(),
    );
    finishes(logger.verify(&tenant("acme"), Some(&signer.verifier()), None, |_, _| {}))
        .await
        .unwrap()
}

async fn verify(l: &Ledger) -> VerifyReport {
    finishes(
        l.logger
            .verify(&tenant("acme"), Some(&l.signer.verifier()), None, |_, _| {}),
    )
    .await
    .unwrap()
}

async fn leaf(l: &Ledger, seq: u64) -> Vec<u8> {
    l.store.entries(&tenant("acme"), seq, 1).await.unwrap()[0]
        .leaf
        .clone()
}

/// Changes one byte of entry `seq`'s stored leaf (its stored hash is left alone).
async fn corrupt(l: &Ledger, seq: u64) {
    let mut bytes = leaf(l, seq).await;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    l.store
        .dangerous_overwrite_leaf(&tenant("acme"), seq, bytes);
}

/// Rewrites entry `seq`'s leaf and its stored hash together: only a root can catch it.
async fn rewrite(l: &Ledger, seq: u64) {
    let forged = String::from_utf8(leaf(l, seq).await)
        .unwrap()
        .replace("four-eyes approval", "four-eyes approval!");
    l.store
        .dangerous_rewrite_entry(&tenant("acme"), seq, forged.into_bytes());
}

/// The reference: every stored leaf hash, checked entry by entry and folded by RFC 6962's
/// recursive definition, independent of the verifier's chunks and edges.
async fn reference(l: &Ledger) -> (Option<u64>, Hash) {
    let entries = l
        .store
        .entries(&tenant("acme"), 0, usize::MAX)
        .await
        .unwrap();
    let first_bad = entries
        .iter()
        .find(|e| ledger::leaf_hash(&e.leaf) != e.leaf_hash)
        .map(|e| e.seq);
    let hashes: Vec<Hash> = entries.iter().map(|e| e.leaf_hash).collect();
    (first_bad, ledger::root_from_leaf_hashes(&hashes))
}

#[tokio::test(start_paused = true)]
async fn an_intact_ledger_of_several_chunks_has_the_root_computed_from_scratch() {
    // Checkpoints on a chunk boundary, just before and just after one, and mid-chunk.
    let at = [
        VERIFY_CHUNK - 1,
        VERIFY_CHUNK,
        VERIFY_CHUNK + 1,
        2 * VERIFY_CHUNK + 1_234,
    ];
    let l = ledger(ENTRIES, &at).await;
    let report = verify(&l).await;
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.entries, ENTRIES);
    assert_eq!(report.checkpoints_verified, 4);
    let (first_bad, root) = reference(&l).await;
    assert_eq!(first_bad, None);
    assert_eq!(report.root, Some(root));
}

#[tokio::test(start_paused = true)]
async fn the_last_entry_of_a_chunk_and_the_first_of_the_next_are_named_exactly() {
    let l = ledger(2 * VERIFY_CHUNK + 10, &[]).await;
    for seq in [VERIFY_CHUNK - 1, VERIFY_CHUNK] {
        let original = leaf(&l, seq).await;
        corrupt(&l, seq).await;
        assert_eq!(
            verify(&l).await.problem,
            Some(Problem::LeafHashMismatch { seq }),
            "entry {seq}"
        );
        l.store
            .dangerous_overwrite_leaf(&tenant("acme"), seq, original);
        assert!(verify(&l).await.is_intact());
    }
}

#[tokio::test(start_paused = true)]
async fn of_two_bad_entries_in_different_chunks_the_lower_is_named() {
    let l = ledger(ENTRIES, &[]).await;
    // The later chunk is checked as early as the earlier one (or earlier, on another thread);
    // the problem named must still be the lower entry's.
    corrupt(&l, 3 * VERIFY_CHUNK + 5).await;
    corrupt(&l, VERIFY_CHUNK + 17).await;
    assert_eq!(
        verify(&l).await.problem,
        Some(Problem::LeafHashMismatch {
            seq: VERIFY_CHUNK + 17
        })
    );
    // A deletion in the first chunk comes before both.
    l.store.dangerous_delete_entry(&tenant("acme"), 100);
    assert_eq!(
        verify(&l).await.problem,
        Some(Problem::Gap {
            expected_seq: 100,
            found_seq: 101
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_root_at_a_chunk_boundary_comes_before_a_bad_entry_in_the_next_chunk() {
    let l = ledger(3 * VERIFY_CHUNK, &[VERIFY_CHUNK]).await;
    // Entry 10 rewritten with its hash: only the checkpoint at VERIFY_CHUNK (the end of the
    // first chunk) can catch it, and it does so before entry VERIFY_CHUNK is looked at.
    rewrite(&l, 10).await;
    corrupt(&l, VERIFY_CHUNK).await;
    let problem = verify(&l).await.problem.unwrap();
    assert!(
        matches!(problem, Problem::RootMismatch { size, .. } if size == VERIFY_CHUNK),
        "{problem:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_entry_before_a_checkpoint_inside_its_chunk_is_named_before_the_root() {
    let cp = VERIFY_CHUNK + 100;
    let l = ledger(2 * VERIFY_CHUNK, &[cp]).await;
    // Entry 50 rewritten with its hash (the root at `cp` differs), and entry cp - 1 corrupted:
    // an entry-by-entry check meets entry cp - 1 before it can compare the root at `cp`.
    rewrite(&l, 50).await;
    corrupt(&l, cp - 1).await;
    assert_eq!(
        verify(&l).await.problem,
        Some(Problem::LeafHashMismatch { seq: cp - 1 })
    );
}

#[tokio::test(start_paused = true)]
async fn random_tampering_is_named_at_the_first_bad_entry_like_a_plain_check() {
    let l = ledger(ENTRIES, &[]).await;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    for round in 0..12 {
        let count = 1 + next(4);
        let mut seqs: Vec<u64> = (0..count).map(|_| next(ENTRIES)).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut originals = Vec::new();
        for seq in &seqs {
            originals.push((*seq, leaf(&l, *seq).await));
        }
        for seq in &seqs {
            corrupt(&l, *seq).await;
        }
        let (first_bad, _) = reference(&l).await;
        let first_bad = first_bad.unwrap();
        assert_eq!(first_bad, *seqs.iter().min().unwrap());
        assert_eq!(
            verify(&l).await.problem,
            Some(Problem::LeafHashMismatch { seq: first_bad }),
            "round {round}: tampered {seqs:?}"
        );
        for (seq, original) in originals.into_iter().rev() {
            l.store
                .dangerous_overwrite_leaf(&tenant("acme"), seq, original);
        }
    }
    assert!(verify(&l).await.is_intact());
}

/// The in-memory store, answering every `entries` call with at most `cap` rows: pages end at odd
/// places, so chunks start off the chunk grid. Each read is pending when first polled, as a real
/// store's is. With `hole_from`, it also hides every entry from
/// that seq on and ends each page with `planted`, a row beyond the head. After
/// [`ShortPages::MAX_READS`] `entries` calls it fails them, so a verification that keeps asking
/// for the same page ends in an error rather than a hang.
#[derive(Debug)]
struct ShortPages {
    inner: InMemoryStore,
    cap: usize,
    hole_from: Option<u64>,
    planted: Option<StoredEntry>,
    /// Every `entries` call's `(from_seq, limit)`, in order.
    calls: std::sync::Mutex<Vec<(u64, usize)>>,
}

impl ShortPages {
    const MAX_READS: usize = 100;

    fn new(inner: InMemoryStore, cap: usize) -> Self {
        ShortPages {
            inner,
            cap,
            hole_from: None,
            planted: None,
            calls: std::sync::Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl AuditRepository for ShortPages {
    async fn append(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditReceipt>, StoreError> {
        self.inner.append(events).await
    }
    async fn tree_head(&self, tenant: &TenantId) -> Result<TreeHead, StoreError> {
        self.inner.tree_head(tenant).await
    }
    async fn entries(
        &self,
        tenant: &TenantId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let reads = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((from_seq, limit));
            calls.len()
        };
        if reads > Self::MAX_READS {
            return Err(StoreError::Unavailable {
                message: format!("{reads} reads: the reader is not making progress"),
            });
        }
        // Like a real store's read (a blocking thread, a server), not ready when first polled.
        tokio::task::yield_now().await;
        let mut rows = self
            .inner
            .entries(tenant, from_seq, limit.min(self.cap))
            .await?;
        if let Some(hole) = self.hole_from {
            rows.retain(|e| e.seq < hole);
            rows.extend(self.planted.clone());
        }
        Ok(rows)
    }
    async fn nodes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        self.inner.nodes(tenant, ids).await
    }
    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.inner.add_checkpoint(tenant, checkpoint).await
    }
    async fn checkpoints(&self, tenant: &TenantId) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints(tenant).await
    }
    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint(tenant).await
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.inner.tenants().await
    }
}

#[tokio::test(start_paused = true)]
async fn pages_that_end_off_the_chunk_grid_verify_and_name_the_same_entry() {
    let l = ledger(ENTRIES, &[2 * VERIFY_CHUNK + 3]).await;
    let (_, root) = reference(&l).await;
    for cap in [1_001, 3_001, 4_097, 10_000] {
        let repo = Arc::new(ShortPages::new(l.store.clone(), cap));
        let report = verify_with(repo, &l.signer).await;
        assert!(report.is_intact(), "cap {cap}: {:?}", report.problem);
        assert_eq!(report.root, Some(root), "cap {cap}");
        assert_eq!(report.checkpoints_verified, 1, "cap {cap}");
    }
    corrupt(&l, 3 * VERIFY_CHUNK + 1).await;
    corrupt(&l, 3 * VERIFY_CHUNK + 2_000).await;
    for cap in [3_001, 4_097, 10_000] {
        let repo = Arc::new(ShortPages::new(l.store.clone(), cap));
        assert_eq!(
            verify_with(repo, &l.signer).await.problem,
            Some(Problem::LeafHashMismatch {
                seq: 3 * VERIFY_CHUNK + 1
            }),
            "cap {cap}"
        );
    }
}

/// Verifies `l` through a store that hides its entries from `hole_from` on and ends every page
/// with a copy of entry 9 stored at `planted_seq`.
async fn with_planted_row(l: &Ledger, hole_from: u64, planted_seq: u64) -> VerifyReport {
    let mut planted = l.store.entries(&tenant("acme"), 9, 1).await.unwrap()[0].clone();
    planted.seq = planted_seq;
    let repo = ShortPages {
        hole_from: Some(hole_from),
        planted: Some(planted),
        ..ShortPages::new(l.store.clone(), usize::MAX)
    };
    verify_with(Arc::new(repo), &l.signer).await
}

/// Entries missing from some seq on, and a row stored beyond the head: the check stops at the
/// planted row (it is past the snapshot), names the shortfall, and asks for no page twice.
#[tokio::test(start_paused = true)]
async fn a_hole_before_a_row_beyond_the_head_is_named_and_ends_the_reading() {
    let report = with_planted_row(&ledger(10, &[]).await, 6, 15).await;
    assert_eq!(report.entries, 6);
    assert_eq!(
        report.problem,
        Some(Problem::HeadMismatch {
            detail: "the stored head says 10 entries, 6 were read".into()
        })
    );
}

/// A checkpoint of the empty ledger commits to the empty tree's root, and verifies as such.
#[tokio::test(start_paused = true)]
async fn a_checkpoint_of_the_empty_ledger_verifies() {
    let l = ledger(0, &[]).await;
    let empty = l.logger.checkpoint(&tenant("acme")).await.unwrap();
    assert_eq!((empty.size, empty.root), (0, ledger::empty_root()));
    l.logger.append((0..3).map(event).collect()).await.unwrap();
    l.logger.checkpoint(&tenant("acme")).await.unwrap();
    let report = verify(&l).await;
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.checkpoints_verified, 2);
}

/// The verifier reads the snapshot's entries as pages that tile `[0, head)` exactly, none empty
/// and none reaching past the head; the one read at the head is the single-row probe for rows
/// stored beyond it.
#[tokio::test(start_paused = true)]
async fn pages_are_read_up_to_the_snapshots_head_and_not_past_it() {
    let l = ledger(ENTRIES, &[]).await;
    let repo = Arc::new(ShortPages::new(l.store.clone(), usize::MAX));
    let report = verify_with(repo.clone(), &l.signer).await;
    assert!(report.is_intact(), "{:?}", report.problem);
    let calls = repo.calls.lock().unwrap().clone();
    let (probe, pages) = calls.split_last().expect("the verifier read something");
    assert_eq!(*probe, (ENTRIES, 1), "{calls:?}");
    assert!(pages.len() >= 2, "a ledger of several pages: {calls:?}");
    let mut next = 0;
    for &(from, limit) in pages {
        assert_eq!(from, next, "pages tile the ledger: {calls:?}");
        assert!(limit > 0, "an empty read: {calls:?}");
        next = from + limit as u64;
        assert!(next <= ENTRIES, "a read past the head: {calls:?}");
    }
    assert_eq!(next, ENTRIES, "{calls:?}");
}

/// A row stored at the head's size, past every entry the head commits to, is named even though
/// every entry up to the head is intact.
#[tokio::test(start_paused = true)]
async fn a_row_stored_just_beyond_the_head_is_named() {
    let report = with_planted_row(&ledger(10, &[]).await, 10, 10).await;
    assert_eq!(report.entries, 10);
    assert_eq!(
        report.problem,
        Some(Problem::HeadMismatch {
            detail: "entry 10 is stored beyond the tree head (10 entries): it is not part of the \
                     ledger"
                .into()
        })
    );
}
