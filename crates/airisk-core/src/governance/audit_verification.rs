//! Verification of a tenant's ledger from storage: every leaf's hash and form, the gapless
//! sequence, every stored checkpoint's signature and root, the stored head and, given one, a
//! checkpoint kept elsewhere. [`AuditLogger::verify`](super::audit_logger::AuditLogger::verify) is the service's entry point; this module
//! holds the checks and the [`VerifyReport`] they produce, so appending and proving
//! (`audit_logger.rs`) and verifying are read apart. `AUDIT_VERIFICATION.md` lets an auditor do
//! the same in Python or Go.

use serde_json::Value;

use super::audit_record::AuditRecord;
use crate::ledger::{
    self, Checkpoint, CheckpointError, Hash, LedgerName, LedgerVerifier, verify_checkpoint,
};
use crate::ports::{AuditRepository, EntryPage, EntryRef, StoreError};
use crate::security::tenant_context::TenantId;

/// How many entries a verification reads per page.
const VERIFY_PAGE: usize = 16_384;

/// What a verification checks besides the ledger itself. The default checks leaves by hash and
/// place, stored checkpoints' roots (signatures too only with a verifier), and no kept checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// The ledger's public key: with it every stored checkpoint's signature is checked; without
    /// it only their bodies are parsed.
    pub verifier: Option<&'a LedgerVerifier>,
    /// A signed checkpoint note kept outside the store (detects truncation and rollback).
    pub kept_checkpoint: Option<&'a str>,
    /// Also decode every leaf fully and insist its bytes are exactly the canonical form of what
    /// they decode to (a check of the writer, not needed to detect tampering: the leaf hashes
    /// and signed roots already do that). Several times slower.
    pub deep: bool,
}

/// Recomputes `tenant`'s whole ledger from storage: every leaf's hash and form, the gapless
/// sequence, every stored checkpoint's root and signature, the stored head, and, if given, a
/// checkpoint kept elsewhere (which detects truncation and rollback). Stops at the first
/// problem and names it.
///
/// One consistent snapshot is checked: the tree head and the stored checkpoints as of one
/// moment ([`AuditRepository::head_and_checkpoints`]), and the entries up to that head only,
/// so appends and checkpoints committed while it reads are never mistaken for tampering.
/// Afterwards, a row stored beyond that head that no newer head covers is reported.
///
/// The work is spread over the cores: the next page of entries is read while one is checked,
/// and each page is checked in chunks of [`VERIFY_CHUNK`] entries on as many threads as the
/// process may use cores (each chunk's leaves hashed and placed, and its subtree of the
/// Merkle tree built; the subtrees are then joined in order). Chunks are judged in order, so the
/// problem named is always the first an entry-by-entry check would meet.
///
/// `progress(done, total)` is called after each page.
///
/// # Errors
/// [`StoreError`] if the store cannot be read. Integrity problems are not errors: they are the
/// report's [`VerifyReport::problem`].
pub(crate) async fn verify_ledger(
    repo: &dyn AuditRepository,
    name: &LedgerName,
    tenant: &TenantId,
    options: &VerifyOptions<'_>,
    mut progress: impl FnMut(u64, u64) + Send,
) -> Result<VerifyReport, StoreError> {
    // One consistent snapshot: the head and the checkpoints as of one moment. Entries are
    // then read up to that head only. The ledger is append-only, so the first `head.size`
    // entries read later are exactly those the head committed to; entries appended meanwhile
    // lie beyond it and are not part of this verification (they are checked, after the
    // snapshot, only for being covered by a head at all).
    let (head, checkpoints) = repo.head_and_checkpoints(tenant).await?;
    let origin = name.origin_for(tenant);
    let mut report = VerifyReport {
        tenant: tenant.clone(),
        entries: 0,
        root: None,
        checkpoints_verified: 0,
        kept_checkpoint_verified: false,
        problem: None,
    };

    // Parse and check every signature before reading entries, so a forged checkpoint is
    // named even if the entries are fine.
    let mut expected_roots: Vec<(u64, Hash, String)> = Vec::new();
    for cp in &checkpoints {
        match check_note(&cp.note, options.verifier, &origin) {
            Ok(parsed) if parsed.size == cp.size && parsed.root == cp.root => {
                expected_roots.push((cp.size, cp.root, format!("stored checkpoint {}", cp.size)));
            }
            Ok(_) => {
                report.problem = Some(Problem::CheckpointMismatch {
                    size: cp.size,
                    detail: "the signed note does not match the stored size and root".into(),
                });
                return Ok(report);
            }
            Err(e) => {
                report.problem = Some(Problem::BadCheckpoint {
                    size: cp.size,
                    detail: e.to_string(),
                });
                return Ok(report);
            }
        }
    }
    if let Some(text) = options.kept_checkpoint {
        match check_note(text, options.verifier, &origin) {
            Ok(kept) => {
                if kept.size > head.size {
                    report.problem = Some(Problem::Truncated {
                        kept_size: kept.size,
                        ledger_size: head.size,
                    });
                    return Ok(report);
                }
                expected_roots.push((kept.size, kept.root, "kept checkpoint".into()));
            }
            Err(e) => {
                report.problem = Some(Problem::BadKeptCheckpoint {
                    detail: e.to_string(),
                });
                return Ok(report);
            }
        }
    }
    expected_roots.sort_by_key(|(size, _, _)| *size);
    // The sizes at which a root is compared: the chunk checks keep the tree's edge there.
    let mut sizes: Vec<u64> = expected_roots.iter().map(|(size, _, _)| *size).collect();
    sizes.dedup();
    let mut expected = expected_roots.into_iter().peekable();

    let mut edge = Edge::default();
    // A checkpoint of size 0 commits to the empty tree.
    while let Some((0, root, what)) = expected.peek().cloned() {
        if edge.root() != root {
            report.problem = Some(Problem::RootMismatch { size: 0, what });
            return Ok(report);
        }
        bump(&mut report, &what);
        expected.next();
    }
    let threads = verify_threads();
    // The next page is read, on the store's threads (SQLite: a blocking reader; PostgreSQL: the
    // server), while this one is checked on every core.
    let mut reads = PageReads::new(repo, tenant, head.size, READS_AHEAD);
    let mut next_seq = 0u64;
    loop {
        let page = reads.next(next_seq).await?;
        if page.is_empty() {
            break;
        }
        // A row at or past the snapshot's head (a store that ignored the limit, or a row
        // planted beyond a gap) ends the check: judged after the snapshot, below.
        let within = page
            .seqs()
            .iter()
            .position(|seq| *seq >= head.size)
            .unwrap_or(page.len());
        // Chunks are checked apart but judged in order, each as a whole: the roots due inside
        // it (each reached before its first problem), then its first problem. So the problem
        // named is the one a check entry by entry meets first.
        for chunk in check_chunks(
            tenant,
            &page,
            within,
            next_seq,
            &sizes,
            options.deep,
            threads,
        ) {
            for (size, at) in &chunk.edges {
                let root = edge.joined(at).root();
                while let Some((_, expected_root, what)) = expected.next_if(|(s, _, _)| s == size) {
                    if root != expected_root {
                        report.problem = Some(Problem::RootMismatch { size: *size, what });
                        return Ok(report);
                    }
                    bump(&mut report, &what);
                }
            }
            if let Some(problem) = chunk.problem {
                report.problem = Some(problem);
                return Ok(report);
            }
            edge.extend(&chunk.edge);
            next_seq = edge.size;
        }
        report.entries = next_seq;
        progress(next_seq, head.size);
        if within < page.len() || next_seq >= head.size {
            break;
        }
    }
    report.entries = next_seq;
    if next_seq != head.size {
        report.problem = Some(Problem::HeadMismatch {
            detail: format!(
                "the stored head says {} entries, {} were read",
                head.size, next_seq
            ),
        });
        return Ok(report);
    }
    if edge.root() != head.root {
        report.problem = Some(Problem::HeadMismatch {
            detail: "the stored head root differs from the recomputed root".into(),
        });
        return Ok(report);
    }
    if let Some(problem) = rows_beyond(repo, tenant, head.size).await? {
        report.problem = Some(problem);
        return Ok(report);
    }
    if let Some((size, _, what)) = expected.next() {
        // Only reachable if a checkpoint is beyond the entries read: entries were removed.
        report.problem = Some(Problem::Truncated {
            kept_size: size,
            ledger_size: next_seq,
        });
        let _ = what;
        return Ok(report);
    }
    report.root = Some(edge.root());
    Ok(report)
}

/// Most threads a verification hashes on (beyond a few, reading the rows is the limit).
const MAX_THREADS: usize = 8;

/// Pages read ahead of the one being checked (each is up to [`VERIFY_PAGE`] entries held in
/// memory). One: on the 2-core machine a second read in flight made verification slower
/// (1.65–1.83M against 1.75–1.96M records/s at load 2), its reader competing with the hashing
/// threads for the cores.
const READS_AHEAD: usize = 1;

/// The threads a verification checks leaves on: every core this process may use, at most
/// [`MAX_THREADS`]. The store's reader runs beside them; it is the lighter part once it hands
/// over packed pages ([`AuditRepository::entry_page`]; SQLite maps the file while it scans).
/// Measured on two cores (issue 18, 2026-12-01): both cores hashing, 1.48–1.65M records/s,
/// against 1.28–1.33M with the calling thread alone.
fn verify_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_THREADS)
}

type EntriesRead<'r> =
    std::pin::Pin<Box<dyn Future<Output = Result<EntryPage, StoreError>> + Send + 'r>>;

/// One page asked of the store: running, or its answer.
enum PageRead<'r> {
    Running(EntriesRead<'r>),
    Done(Result<EntryPage, StoreError>),
}

impl PageRead<'_> {
    fn poll(&mut self, cx: &mut std::task::Context<'_>) {
        if let PageRead::Running(read) = self
            && let std::task::Poll::Ready(result) = read.as_mut().poll(cx)
        {
            *self = PageRead::Done(result);
        }
    }
}

/// The pages of one snapshot, read in order and ahead: while the caller checks one page, the
/// next `ahead` are being read. Pages are asked for where the previous one would end if it is
/// whole; when it is not (a store that returned fewer or more rows), the reads ahead are
/// dropped and reading resumes where the caller says.
struct PageReads<'r> {
    repo: &'r dyn AuditRepository,
    tenant: &'r TenantId,
    head: u64,
    ahead: usize,
    next_from: u64,
    queue: std::collections::VecDeque<(u64, PageRead<'r>)>,
}

impl<'r> PageReads<'r> {
    fn new(repo: &'r dyn AuditRepository, tenant: &'r TenantId, head: u64, ahead: usize) -> Self {
        PageReads {
            repo,
            tenant,
            head,
            ahead: ahead.max(1),
            next_from: 0,
            queue: std::collections::VecDeque::new(),
        }
    }

    /// The page from entry `from` (at most [`VERIFY_PAGE`] entries, never past the snapshot's
    /// head; empty at the head).
    async fn next(&mut self, from: u64) -> Result<EntryPage, StoreError> {
        if self.queue.front().is_none_or(|(at, _)| *at != from) {
            self.queue.clear();
            self.next_from = from;
        }
        while self.queue.len() <= self.ahead && self.next_from < self.head {
            let at = self.next_from;
            let limit = usize::try_from(self.head - at)
                .unwrap_or(VERIFY_PAGE)
                .min(VERIFY_PAGE);
            let read = self.repo.entry_page(self.tenant, at, limit);
            self.queue.push_back((at, PageRead::Running(read)));
            // `limit` <= VERIFY_PAGE, so it fits.
            self.next_from = at.saturating_add(limit as u64);
        }
        // Drive every read until the first is answered: the others go on meanwhile and while
        // the caller checks this page.
        let queue = &mut self.queue;
        std::future::poll_fn(|cx| {
            for (_, read) in queue.iter_mut() {
                read.poll(cx);
            }
            match queue.front() {
                Some((_, PageRead::Running(_))) => std::task::Poll::Pending,
                _ => std::task::Poll::Ready(()),
            }
        })
        .await;
        match self.queue.pop_front() {
            Some((_, PageRead::Done(result))) => result,
            // Nothing left below the head (a running read is never popped).
            _ => Ok(EntryPage::default()),
        }
    }
}

/// The right edge of a Merkle tree being rebuilt: the roots of its perfect subtrees, largest
/// first (what [`crate::ledger::Frontier`] keeps), grown by whole subtrees so that chunks
/// hashed apart join into one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Edge {
    size: u64,
    hashes: Vec<Hash>,
}

impl Edge {
    /// Adds a perfect subtree of `2^level` leaves on the right. The tree's size must be a
    /// multiple of `2^level` (chunks are cut so that it is).
    fn push(&mut self, level: u32, mut hash: Hash) {
        debug_assert!(self.size.trailing_zeros() >= level);
        // A set bit at `level` of the size is a same-sized subtree on the left: merge, and
        // carry upwards.
        let mut run = self.size >> level;
        while run & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = ledger::node_hash(&left, &hash);
            run >>= 1;
        }
        self.hashes.push(hash);
        self.size = self.size.saturating_add(1 << level);
    }

    /// Adds `right`, an edge built from nothing over the leaves that follow this one's.
    fn extend(&mut self, right: &Edge) {
        let levels = (0..u64::BITS).rev().filter(|l| (right.size >> l) & 1 == 1);
        for (level, hash) in levels.zip(&right.hashes) {
            self.push(level, *hash);
        }
    }

    /// This edge followed by `right`.
    fn joined(&self, right: &Edge) -> Edge {
        let mut out = self.clone();
        out.extend(right);
        out
    }

    /// The RFC 6962 root: the subtree roots folded from the right.
    fn root(&self) -> Hash {
        let mut hashes = self.hashes.iter().rev();
        match hashes.next() {
            None => Hash::EMPTY_ROOT,
            Some(last) => hashes.fold(*last, |acc, left| ledger::node_hash(left, &acc)),
        }
    }
}

/// Entries a verification checks in one piece, on one thread: a page is cut into chunks at
/// multiples of this (a power of two), so every chunk is a perfect subtree of the Merkle tree
/// (or, at the end, the start of one) that is hashed on its own and joined afterwards.
pub const VERIFY_CHUNK: u64 = 4_096;

/// What checking one chunk found.
#[derive(Debug, PartialEq)]
struct ChunkOutcome {
    /// The edge of the subtree over the entries checked before any problem.
    edge: Edge,
    /// The edge at each size a root is compared at inside the chunk, reached before any problem.
    edges: Vec<(u64, Edge)>,
    /// The chunk's first problem.
    problem: Option<Problem>,
}

/// Where `rows` (entries `start..` if none is missing) are cut into chunks: each at most
/// [`VERIFY_CHUNK`] long and starting at a multiple of its length's largest power of two, so
/// that its subtree joins the tree before it.
fn chunk_bounds(start: u64, rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut bounds = Vec::new();
    let (mut at, mut seq) = (0usize, start);
    while at < rows {
        let align = if seq == 0 {
            VERIFY_CHUNK
        } else {
            (1u64 << seq.trailing_zeros()).min(VERIFY_CHUNK)
        };
        // At most VERIFY_CHUNK, so it fits.
        let len = usize::try_from(align).unwrap_or(1).min(rows - at);
        bounds.push(at..at + len);
        at += len;
        seq = seq.saturating_add(len as u64);
    }
    bounds
}

/// Checks the first `rows` entries of `page` (which should be entries `start..`) in chunks on up
/// to `threads` threads and returns each chunk's outcome, in order.
fn check_chunks(
    tenant: &TenantId,
    page: &EntryPage,
    rows: usize,
    start: u64,
    sizes: &[u64],
    deep: bool,
    threads: usize,
) -> Vec<ChunkOutcome> {
    let bounds = chunk_bounds(start, rows.min(page.len()));
    let check = |i: usize| {
        let range = bounds.get(i).cloned().unwrap_or_default();
        let first = start.saturating_add(range.start as u64);
        check_chunk(tenant, page.range(range), first, sizes, deep)
    };
    let workers = threads.min(bounds.len());
    if workers <= 1 {
        return (0..bounds.len()).map(check).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= bounds.len() {
                return done;
            }
            done.push((i, check(i)));
        }
    };
    let mut outcomes = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut outcomes = work();
        for helper in helpers {
            match helper.join() {
                Ok(more) => outcomes.extend(more),
                Err(panicked) => std::panic::resume_unwind(panicked),
            }
        }
        outcomes
    });
    outcomes.sort_unstable_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Checks one chunk, entry by entry from `start`, up to its first problem: each entry's seq,
/// leaf hash and placement, and the subtree over them, noting its edge at each of `sizes`
/// (sorted) that falls inside.
fn check_chunk<'p>(
    tenant: &TenantId,
    rows: impl Iterator<Item = EntryRef<'p>>,
    start: u64,
    sizes: &[u64],
    deep: bool,
) -> ChunkOutcome {
    let mut outcome = ChunkOutcome {
        edge: Edge::default(),
        edges: Vec::new(),
        problem: None,
    };
    let mut due = sizes
        .get(sizes.partition_point(|s| *s <= start)..)
        .unwrap_or_default()
        .iter()
        .peekable();
    for (seq, entry) in (start..).zip(rows) {
        if entry.seq != seq {
            outcome.problem = Some(Problem::Gap {
                expected_seq: seq,
                found_seq: entry.seq,
            });
            break;
        }
        if let Some(problem) = check_leaf(tenant, seq, entry.leaf, entry.leaf_hash, deep) {
            outcome.problem = Some(problem);
            break;
        }
        outcome.edge.push(0, *entry.leaf_hash);
        if due.next_if(|s| **s == seq + 1).is_some() {
            outcome.edges.push((seq + 1, outcome.edge.clone()));
        }
    }
    outcome
}

/// After a snapshot of `size` entries verified: a row stored at or beyond `size` is genuine
/// only if a head committed after it covers it (an append stores its rows and its head in one
/// transaction, and heads only grow). So the first such row is read, then the head again; a
/// row the newer head does not cover was put there outside the ledger.
async fn rows_beyond(
    repo: &dyn AuditRepository,
    tenant: &TenantId,
    size: u64,
) -> Result<Option<Problem>, StoreError> {
    let Some(row) = repo.entries(tenant, size, 1).await?.into_iter().next() else {
        return Ok(None);
    };
    let now = repo.tree_head(tenant).await?;
    Ok((row.seq >= now.size).then(|| Problem::HeadMismatch {
        detail: format!(
            "entry {} is stored beyond the tree head ({} entries): it is not part of the ledger",
            row.seq, now.size
        ),
    }))
}

fn bump(report: &mut VerifyReport, what: &str) {
    if what == "kept checkpoint" {
        report.kept_checkpoint_verified = true;
    } else {
        report.checkpoints_verified += 1;
    }
}

/// Opens a checkpoint note: verifies its signature when a verifier is known (otherwise only parses
/// its body) and checks it names this tenant's ledger.
fn check_note(
    note: &str,
    verifier: Option<&LedgerVerifier>,
    origin: &ledger::Origin,
) -> Result<Checkpoint, NoteError> {
    let checkpoint = match verifier {
        Some(v) => verify_checkpoint(note, v)?,
        None => {
            let body = note
                .rfind("\n\n")
                .and_then(|i| note.get(..=i))
                .ok_or(NoteError::NoSignatureBlock)?;
            Checkpoint::parse_body(body)?
        }
    };
    if checkpoint.origin != *origin {
        return Err(NoteError::OtherLedger {
            found: checkpoint.origin.as_str().to_owned(),
            expected: origin.as_str().to_owned(),
        });
    }
    Ok(checkpoint)
}

/// Why a checkpoint note cannot be used; its message is a [`Problem`]'s `detail`.
#[derive(Debug, thiserror::Error)]
enum NoteError {
    /// A bad signature, or a body that is not a checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// No blank line separates the body from signatures.
    #[error("the note has no signature block")]
    NoSignatureBlock,
    /// A checkpoint of another ledger.
    #[error("the note is for {found:?}, not this ledger ({expected:?})")]
    OtherLedger {
        /// The note's origin.
        found: String,
        /// This tenant's ledger's origin.
        expected: String,
    },
}

/// Reads `(v, seq, tenant_id)` from the end of a canonical leaf without parsing the rest.
///
/// In RFC 8785 form the record's members are sorted, so a canonical leaf ends with exactly
/// `,"seq":<digits>,"tenant_id":"<id>","v":<digits>}`; and since a `"` inside a JSON string is
/// always escaped, the last `,"seq":` of the bytes is that member (a nested `seq` in metadata sorts
/// earlier). Anything else returns `None` and the caller parses the JSON properly.
fn canonical_tail(leaf: &[u8]) -> Option<(u64, u64, &[u8])> {
    const SEQ: &[u8] = b",\"seq\":";
    const TENANT: &[u8] = b",\"tenant_id\":\"";
    const V: &[u8] = b"\",\"v\":";
    let start = leaf.windows(SEQ.len()).rposition(|w| w == SEQ)?;
    let rest = leaf.get(start + SEQ.len()..)?.strip_suffix(b"}")?;
    let digits = |b: &[u8]| -> Option<u64> {
        if b.is_empty() || b.len() > 19 || (b.len() > 1 && b.first() == Some(&b'0')) {
            return None;
        }
        b.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit()
                .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                .flatten()
        })
    };
    let seq_end = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = digits(rest.get(..seq_end)?)?;
    let rest = rest.get(seq_end..)?.strip_prefix(TENANT)?;
    let tenant_end = rest.iter().position(|b| *b == b'"')?;
    let tenant = rest.get(..tenant_end)?;
    let v = digits(rest.get(tenant_end..)?.strip_prefix(V)?)?;
    Some((v, seq, tenant))
}

/// The members of a leaf that place it: read without decoding the rest.
#[derive(serde::Deserialize)]
struct LeafPlace<'a> {
    v: u64,
    seq: u64,
    #[serde(borrow)]
    tenant_id: std::borrow::Cow<'a, str>,
}

/// Checks one stored leaf: its hash, and that it says it is this tenant's entry `seq`; with
/// `deep`, also that it decodes to a valid record whose canonical form is exactly these bytes.
fn check_leaf(
    tenant: &TenantId,
    seq: u64,
    leaf: &[u8],
    stored_hash: &Hash,
    deep: bool,
) -> Option<Problem> {
    if &ledger::leaf_hash(leaf) != stored_hash {
        return Some(Problem::LeafHashMismatch { seq });
    }
    if !deep {
        if let Some((v, leaf_seq, leaf_tenant)) = canonical_tail(leaf) {
            return if v != super::audit_record::LEAF_VERSION {
                Some(Problem::MalformedLeaf {
                    seq,
                    detail: format!("unsupported leaf version {v}"),
                })
            } else if leaf_seq != seq {
                Some(Problem::MisplacedLeaf {
                    seq,
                    detail: format!("the leaf says seq {leaf_seq}"),
                })
            } else if leaf_tenant != tenant.as_str().as_bytes() {
                Some(Problem::MisplacedLeaf {
                    seq,
                    detail: format!(
                        "the leaf belongs to tenant {}",
                        String::from_utf8_lossy(leaf_tenant)
                    ),
                })
            } else {
                None
            };
        }
        return match serde_json::from_slice::<LeafPlace<'_>>(leaf) {
            Err(e) => Some(Problem::MalformedLeaf {
                seq,
                detail: format!("leaf bytes are not an audit record: {e}"),
            }),
            Ok(place) if place.v != super::audit_record::LEAF_VERSION => {
                Some(Problem::MalformedLeaf {
                    seq,
                    detail: format!("unsupported leaf version {}", place.v),
                })
            }
            Ok(place) if place.seq != seq => Some(Problem::MisplacedLeaf {
                seq,
                detail: format!("the leaf says seq {}", place.seq),
            }),
            Ok(place) if place.tenant_id != tenant.as_str() => Some(Problem::MisplacedLeaf {
                seq,
                detail: format!("the leaf belongs to tenant {}", place.tenant_id),
            }),
            Ok(_) => None,
        };
    }
    match AuditRecord::from_leaf_bytes(leaf) {
        Err(e) => Some(Problem::MalformedLeaf {
            seq,
            detail: e.to_string(),
        }),
        Ok(record) if record.seq() != seq => Some(Problem::MisplacedLeaf {
            seq,
            detail: format!("the leaf says seq {}", record.seq()),
        }),
        Ok(record) if record.event().tenant_id() != tenant => Some(Problem::MisplacedLeaf {
            seq,
            detail: format!("the leaf belongs to tenant {}", record.event().tenant_id()),
        }),
        Ok(_) => None,
    }
}

/// The outcome of [`AuditLogger::verify`](super::audit_logger::AuditLogger::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The tenant verified.
    pub tenant: TenantId,
    /// Entries read and checked before stopping.
    pub entries: u64,
    /// The recomputed root, if the whole ledger verified.
    pub root: Option<Hash>,
    /// Stored checkpoints whose signature and root were confirmed.
    pub checkpoints_verified: u64,
    /// Whether a kept checkpoint was given and confirmed.
    pub kept_checkpoint_verified: bool,
    /// The first problem found, if any.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when nothing was wrong.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// The report as JSON, for `--json` output.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "tenant": self.tenant.as_str(),
            "intact": self.is_intact(),
            "entries": self.entries,
            "root": self.root.map(|r| r.to_hex()),
            "checkpoints_verified": self.checkpoints_verified,
            "kept_checkpoint_verified": self.kept_checkpoint_verified,
            "first_bad_seq": self.problem.as_ref().and_then(Problem::seq),
            "problem": self.problem.as_ref().map(ToString::to_string),
        })
    }
}

/// What `verify` found wrong. Each names where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The stored leaf bytes do not hash to the stored leaf hash: the record was altered.
    #[error("entry {seq}: leaf bytes do not match the stored leaf hash (record altered)")]
    LeafHashMismatch {
        /// The bad entry.
        seq: u64,
    },
    /// The stored leaf bytes are not a canonical audit record.
    #[error("entry {seq}: {detail}")]
    MalformedLeaf {
        /// The bad entry.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// The leaf is intact but sits at the wrong place (records swapped or copied).
    #[error("entry {seq}: misplaced record: {detail}")]
    MisplacedLeaf {
        /// The bad entry.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A sequence number is missing (record deleted).
    #[error(
        "entry {expected_seq}: missing (next stored entry is {found_seq}); a record was deleted"
    )]
    Gap {
        /// The first missing seq.
        expected_seq: u64,
        /// The seq found in its place.
        found_seq: u64,
    },
    /// The recomputed root at a checkpoint's size differs from what the checkpoint signed.
    #[error("root at size {size} differs from the {what}: an entry before {size} was altered")]
    RootMismatch {
        /// The tree size.
        size: u64,
        /// Which checkpoint.
        what: String,
    },
    /// A stored checkpoint's signature or text is invalid.
    #[error("stored checkpoint at size {size} is invalid: {detail}")]
    BadCheckpoint {
        /// Its size.
        size: u64,
        /// Why.
        detail: String,
    },
    /// A stored checkpoint's note disagrees with its stored size or root.
    #[error("stored checkpoint at size {size}: {detail}")]
    CheckpointMismatch {
        /// Its size.
        size: u64,
        /// Why.
        detail: String,
    },
    /// The checkpoint given on the command line is invalid.
    #[error("the kept checkpoint is invalid: {detail}")]
    BadKeptCheckpoint {
        /// Why.
        detail: String,
    },
    /// A checkpoint commits to more entries than the ledger holds.
    #[error(
        "ledger truncated or rolled back: a checkpoint commits to {kept_size} entries, the ledger holds {ledger_size}"
    )]
    Truncated {
        /// The checkpoint's size.
        kept_size: u64,
        /// The entries present.
        ledger_size: u64,
    },
    /// The stored tree head disagrees with the entries.
    #[error("tree head mismatch: {detail}")]
    HeadMismatch {
        /// Why.
        detail: String,
    },
}

impl Problem {
    /// The first bad entry's seq, where one can be named.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::LeafHashMismatch { seq }
            | Problem::MalformedLeaf { seq, .. }
            | Problem::MisplacedLeaf { seq, .. } => Some(*seq),
            Problem::Gap { expected_seq, .. } => Some(*expected_seq),
            Problem::Truncated { ledger_size, .. } => Some(*ledger_size),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::audit_record::{AuditEvent, AuditEventInput, Outcome};

    fn leaf(seq: u64, metadata: Option<Value>) -> Vec<u8> {
        AuditEvent::parse(
            uuid::Uuid::now_v7(),
            Outcome::Success,
            AuditEventInput {
                actor: "alice".into(),
                tenant_id: "acme-eu".into(),
                action: "model.register".into(),
                resource_type: "model".into(),
                resource_id: "m@1".into(),
                reason: Some("a \"quoted\" ,\"seq\":9 reason".into()),
                correlation_id: "c1".into(),
                metadata,
            },
        )
        .unwrap()
        .seal(seq, chrono::Utc::now())
        .unwrap()
        .into_leaf_bytes()
    }

    #[test]
    fn the_tail_of_a_canonical_leaf_places_it_like_a_full_parse() {
        for (seq, metadata) in [
            (0, None),
            (
                41,
                Some(serde_json::json!({"seq": 7, "tenant_id": "globex", "v": 2})),
            ),
            (
                9_007_199_254_740_991,
                Some(serde_json::json!({"nested": {"seq": 1}})),
            ),
        ] {
            let bytes = leaf(seq, metadata);
            let full: LeafPlace<'_> = serde_json::from_slice(&bytes).unwrap();
            let (v, s, t) = canonical_tail(&bytes).unwrap();
            assert_eq!((v, s, t), (full.v, full.seq, full.tenant_id.as_bytes()));
            assert_eq!((v, s, t), (1, seq, &b"acme-eu"[..]));
        }
    }

    #[test]
    fn chunks_cover_the_rows_and_each_joins_the_tree_before_it() {
        for start in [0, 1, 3, 4_095, 4_096, 4_097, 12_288, 1_001, 65_535] {
            for rows in [0usize, 1, 5, 4_096, 16_384, 20_000] {
                let bounds = chunk_bounds(start, rows);
                let mut at = 0;
                for range in &bounds {
                    assert_eq!(range.start, at, "contiguous");
                    let len = (range.end - range.start) as u64;
                    assert!(
                        (1..=VERIFY_CHUNK).contains(&len),
                        "{start} {rows} {range:?}"
                    );
                    let seq = start + range.start as u64;
                    // The largest subtree in the chunk fits the alignment of its start.
                    let top = 63 - len.leading_zeros();
                    assert!(seq == 0 || seq.trailing_zeros() >= top, "{seq} {len}");
                    at = range.end;
                }
                assert_eq!(at, rows);
            }
        }
    }

    #[test]
    fn an_edge_joined_from_chunks_has_the_rfc_6962_root_at_every_size() {
        let leaves: Vec<Hash> = (0u32..300)
            .map(|i| ledger::leaf_hash(&i.to_be_bytes()))
            .collect();
        for start in [0u64, 1, 6, 64, 100] {
            // An edge built leaf by leaf up to `start`, then the rest in chunks as the verifier
            // cuts them (a chunk size of 4,096 never applies below 300 leaves, so sizes are set
            // by alignment alone).
            let mut edge = Edge::default();
            for leaf in leaves.iter().take(start as usize) {
                edge.push(0, *leaf);
            }
            let rest = leaves.len() - start as usize;
            for range in chunk_bounds(start, rest) {
                let mut chunk = Edge::default();
                for (i, leaf) in leaves[start as usize..][range].iter().enumerate() {
                    chunk.push(0, *leaf);
                    let size = edge.size + i as u64 + 1;
                    assert_eq!(
                        edge.joined(&chunk).root(),
                        ledger::root_from_leaf_hashes(&leaves[..size as usize]),
                        "size {size}"
                    );
                }
                edge.extend(&chunk);
            }
            assert_eq!(edge.size, leaves.len() as u64);
            let mut frontier = ledger::Frontier::new();
            for leaf in &leaves {
                frontier.append(*leaf).unwrap();
            }
            assert_eq!(edge.hashes, frontier.hashes());
        }
        assert_eq!(Edge::default().root(), Hash::EMPTY_ROOT);
    }

    /// Entries with small leaves in canonical-tail form, each stored with its right hash.
    fn rows(n: u64) -> Vec<crate::ports::StoredEntry> {
        (0..n)
            .map(|seq| {
                let leaf =
                    format!("{{\"n\":{seq},\"seq\":{seq},\"tenant_id\":\"acme-eu\",\"v\":1}}")
                        .into_bytes();
                crate::ports::StoredEntry {
                    seq,
                    leaf_hash: ledger::leaf_hash(&leaf),
                    leaf,
                }
            })
            .collect()
    }

    #[test]
    fn chunks_checked_on_several_threads_are_what_one_thread_finds() {
        // Tests run on whatever cores the machine has; here the thread count is forced, so one
        // thread and several are compared on any machine.
        let tenant = TenantId::parse("acme-eu").unwrap();
        let n = 3 * VERIFY_CHUNK + 123;
        let sizes = [1, VERIFY_CHUNK, VERIFY_CHUNK + 7, 2 * VERIFY_CHUNK - 1, n];
        let mut entries = rows(n);
        let hashes: Vec<Hash> = entries.iter().map(|e| e.leaf_hash).collect();
        for start in [0usize, 1_001] {
            let part = EntryPage::from(entries[start..].to_vec());
            let all = part.len();
            let one = check_chunks(&tenant, &part, all, start as u64, &sizes, false, 1);
            for threads in [2, 3, 8] {
                assert_eq!(
                    one,
                    check_chunks(&tenant, &part, all, start as u64, &sizes, false, threads)
                );
            }
            let mut edge = Edge::default();
            for leaf in &hashes[..start] {
                edge.push(0, *leaf);
            }
            for chunk in &one {
                assert_eq!(chunk.problem, None);
                for (size, at) in &chunk.edges {
                    assert_eq!(
                        edge.joined(at).root(),
                        ledger::root_from_leaf_hashes(&hashes[..*size as usize])
                    );
                }
                edge.extend(&chunk.edge);
            }
            assert_eq!(edge.root(), ledger::root_from_leaf_hashes(&hashes));
        }
        // A bad leaf in the third chunk and a misplaced one in the first: each chunk names its
        // own, on any number of threads, and the first chunk's comes first.
        let late = 2 * VERIFY_CHUNK as usize + 5;
        entries[late].leaf[3] ^= 1;
        entries.swap(100, 101);
        let page = EntryPage::from(entries);
        let one = check_chunks(&tenant, &page, page.len(), 0, &sizes, false, 1);
        assert_eq!(
            one,
            check_chunks(&tenant, &page, page.len(), 0, &sizes, false, 3)
        );
        let problems: Vec<_> = one.iter().filter_map(|c| c.problem.clone()).collect();
        assert_eq!(
            problems,
            vec![
                Problem::Gap {
                    expected_seq: 100,
                    found_seq: 101
                },
                Problem::LeafHashMismatch { seq: late as u64 },
            ]
        );
    }

    #[test]
    fn only_the_rows_asked_for_are_checked() {
        // The verifier cuts a page at the snapshot's head: rows past the cut are not checked
        // (a bad one there is no problem of this snapshot) and do not join the tree.
        let tenant = TenantId::parse("acme-eu").unwrap();
        let mut entries = rows(10);
        entries[7].leaf[3] ^= 1;
        let hashes: Vec<Hash> = entries.iter().map(|e| e.leaf_hash).collect();
        let page = EntryPage::from(entries);
        for threads in [1, 2] {
            let cut = check_chunks(&tenant, &page, 7, 0, &[], false, threads);
            let mut edge = Edge::default();
            for chunk in &cut {
                assert_eq!(chunk.problem, None);
                edge.extend(&chunk.edge);
            }
            assert_eq!(edge.size, 7);
            assert_eq!(edge.root(), ledger::root_from_leaf_hashes(&hashes[..7]));
            let whole = check_chunks(&tenant, &page, 10, 0, &[], false, threads);
            let problems: Vec<_> = whole.iter().filter_map(|c| c.problem.clone()).collect();
            assert_eq!(problems, vec![Problem::LeafHashMismatch { seq: 7 }]);
            // More rows than the page holds: the page is all there is.
            assert_eq!(
                whole,
                check_chunks(&tenant, &page, 99, 0, &[], false, threads)
            );
        }
    }

    #[test]
    fn anything_but_the_exact_canonical_tail_falls_back_to_parsing() {
        for bad in [
            &b""[..],
            b"{}",
            b"{\"seq\":1,\"tenant_id\":\"a\",\"v\":1}",
            b"{\"x\":0,\"seq\":01,\"tenant_id\":\"a\",\"v\":1}",
            b"{\"x\":0,\"seq\":1,\"tenant_id\":\"a\",\"v\":1} ",
            b"{\"x\":0,\"seq\":1,\"tenant_id\":\"a\",\"v\":1,\"w\":2}",
            b"{\"x\":0,\"seq\":99999999999999999999,\"tenant_id\":\"a\",\"v\":1}",
        ] {
            assert_eq!(
                canonical_tail(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
