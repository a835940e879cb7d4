//! The prompt registry: versions, label moves behind an approved request, diffs.

use airisk_core::governance::approval_workflow::{
    ApprovalStatus, NewApprovalRequest, RequestedSubject,
};
use airisk_core::governance::audit_record::Outcome;
use airisk_core::governance::prompt_registry::{
    DiffLine, PromptRegistryError, PromptSelector, diff_lines,
};
use airisk_core::ports::AuditRepository;
use airisk_testkit::fixtures::tenant;
use proptest::prelude::*;

use crate::support::*;

async fn with_versions(w: &World, n: u32) {
    w.prompts
        .register_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "v1: Summarise {doc}",
            "first",
        )
        .await
        .unwrap();
    for v in 2..=n {
        w.prompts
            .update_prompt(
                &analyst(),
                &corr(),
                "kyc-summary",
                &format!("v{v}: Summarise {{doc}}"),
                "tweak",
            )
            .await
            .unwrap();
    }
}

async fn approve_move(w: &World, version: u32, label: &str) -> uuid::Uuid {
    let r = w
        .workflow
        .request_approval(
            &analyst(),
            &corr(),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "kyc-summary".into(),
                    version,
                    label: label.into(),
                },
                justification: "evaluated on the golden set".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap()
        .request;
    w.workflow
        .approve(&approver(), &corr(), r.id(), "ok")
        .await
        .unwrap();
    r.id()
}

#[tokio::test]
async fn prompt_version_increments_correctly_and_earlier_versions_never_change() {
    let w = World::new();
    let first = w
        .prompts
        .register_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc}",
            "first",
        )
        .await
        .unwrap();
    assert_eq!(first.version.version(), 1);
    let second = w
        .prompts
        .update_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc} briefly",
            "shorter",
        )
        .await
        .unwrap();
    assert_eq!(second.version.version(), 2);
    let third = w
        .prompts
        .update_prompt(
            &admin(),
            &corr(),
            "kyc-summary",
            "Summarise {doc} in 3 bullets",
            "format",
        )
        .await
        .unwrap();
    assert_eq!(third.version.version(), 3);
    assert_eq!(third.version.author().as_str(), "ada@acme.example");
    let v1 = w
        .prompts
        .get_prompt(&viewer(), "kyc-summary", &PromptSelector::Version(1))
        .await
        .unwrap();
    assert_eq!(v1, first.version, "version 1 is exactly as written");
    let latest = w
        .prompts
        .get_prompt(&viewer(), "kyc-summary", &PromptSelector::Latest)
        .await
        .unwrap();
    assert_eq!(latest.version(), 3);
    assert_eq!(
        w.audit_trail("acme").await,
        vec![
            ("prompt.register".into(), Outcome::Success),
            ("prompt.update".into(), Outcome::Success),
            ("prompt.update".into(), Outcome::Success)
        ]
    );
}

#[tokio::test]
async fn an_identical_update_is_refused_and_makes_no_version() {
    let w = World::new();
    with_versions(&w, 2).await;
    let got = w
        .prompts
        .update_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "v2: Summarise {doc}",
            "same",
        )
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::NoChange { latest: 2 })),
        "{got:?}"
    );
    let history = w.prompts.history(&viewer(), "kyc-summary").await.unwrap();
    assert_eq!(history.versions.len(), 2);
}

#[tokio::test]
async fn registering_twice_or_updating_a_missing_prompt_is_refused() {
    let w = World::new();
    with_versions(&w, 1).await;
    let twice = w
        .prompts
        .register_prompt(&analyst(), &corr(), "kyc-summary", "other", "again")
        .await;
    assert!(
        matches!(twice, Err(PromptRegistryError::AlreadyExists { .. })),
        "{twice:?}"
    );
    let missing = w
        .prompts
        .update_prompt(&analyst(), &corr(), "nope", "x", "y")
        .await;
    assert!(
        matches!(missing, Err(PromptRegistryError::NotFound)),
        "{missing:?}"
    );
}

#[tokio::test]
async fn invalid_prompt_input_is_a_typed_error() {
    let w = World::new();
    for (name, template, reason) in [
        ("", "t", "r"),
        ("has space", "t", "r"),
        ("ok", "", "r"),
        ("ok", "t", ""),
        ("ok", "nul\0byte", "r"),
    ] {
        let got = w
            .prompts
            .register_prompt(&analyst(), &corr(), name, template, reason)
            .await;
        assert!(
            matches!(got, Err(PromptRegistryError::Invalid(_))),
            "{name:?}: {got:?}"
        );
    }
    let huge = "x".repeat(256 * 1024 + 1);
    let got = w
        .prompts
        .register_prompt(&analyst(), &corr(), "ok", &huge, "r")
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::Invalid(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn viewers_and_approvers_cannot_write_prompts() {
    let w = World::new();
    for who in [viewer(), approver()] {
        let got = w
            .prompts
            .register_prompt(&who, &corr(), "p", "t", "r")
            .await;
        assert!(
            matches!(got, Err(PromptRegistryError::Forbidden(_))),
            "{got:?}"
        );
    }
    with_versions(&w, 1).await;
    let got = w
        .prompts
        .update_prompt(&viewer(), &corr(), "kyc-summary", "t2", "r")
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::Forbidden(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_label_move_without_an_approved_request_is_refused_and_audited() {
    let w = World::new();
    with_versions(&w, 2).await;
    let got = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 2)
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::MoveNotApproved { .. })),
        "{got:?}"
    );
    let (action, outcome) = w.audit_trail("acme").await.pop().unwrap();
    assert_eq!(
        (action.as_str(), outcome),
        ("prompt.move_label", Outcome::Denied)
    );
    let by_label = w
        .prompts
        .get_prompt(
            &viewer(),
            "kyc-summary",
            &PromptSelector::Label("production".into()),
        )
        .await;
    assert!(matches!(by_label, Err(PromptRegistryError::NotFound)));

    // A pending (not yet approved) request does not allow it either.
    w.workflow
        .request_approval(
            &analyst(),
            &corr(),
            NewApprovalRequest {
                subject: RequestedSubject::PromptLabel {
                    name: "kyc-summary".into(),
                    version: 2,
                    label: "production".into(),
                },
                justification: "x".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap();
    let got = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 2)
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::MoveNotApproved { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_approval_for_another_version_or_label_does_not_allow_the_move() {
    let w = World::new();
    with_versions(&w, 3).await;
    approve_move(&w, 2, "production").await;
    approve_move(&w, 3, "staging").await;
    let got = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 3)
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::MoveNotApproved { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_approved_move_happens_once_and_is_kept_in_the_history() {
    let w = World::new();
    with_versions(&w, 3).await;
    let approval = approve_move(&w, 2, "production").await;
    let mv = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 2)
        .await
        .unwrap();
    assert_eq!((mv.from_version, mv.to_version), (None, 2));
    assert_eq!(mv.approval_request_id, approval);
    let current = w
        .prompts
        .get_prompt(
            &viewer(),
            "kyc-summary",
            &PromptSelector::Label("production".into()),
        )
        .await
        .unwrap();
    assert_eq!(current.version(), 2);
    // The approval was single use.
    let again = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 2)
        .await;
    assert!(
        matches!(again, Err(PromptRegistryError::MoveNotApproved { .. })),
        "{again:?}"
    );
    let spent = w.workflow.get(&viewer(), approval).await.unwrap();
    assert_eq!(spent.status(), ApprovalStatus::Approved);
    assert!(spent.used_at().is_some());

    approve_move(&w, 3, "production").await;
    let second = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 3)
        .await
        .unwrap();
    assert_eq!((second.from_version, second.to_version), (Some(2), 3));
    let history = w.prompts.history(&viewer(), "kyc-summary").await.unwrap();
    let moves: Vec<(Option<u32>, u32)> = history
        .label_moves
        .iter()
        .map(|m| (m.from_version, m.to_version))
        .collect();
    assert_eq!(moves, vec![(None, 2), (Some(2), 3)]);
    assert_eq!(history.labels, vec![("production".to_owned(), 3)]);
}

#[tokio::test]
async fn a_label_move_rolls_back_if_its_audit_record_fails() {
    let w = World::new();
    with_versions(&w, 2).await;
    let approval = approve_move(&w, 2, "production").await;
    let size = w.store.tree_head(&tenant("acme")).await.unwrap().size;
    w.store.dangerous_fail_next_appends(1);
    let got = w
        .prompts
        .move_label(&analyst(), &corr(), "kyc-summary", "production", 2)
        .await;
    assert!(matches!(got, Err(PromptRegistryError::Store(_))), "{got:?}");
    assert!(
        w.workflow
            .get(&viewer(), approval)
            .await
            .unwrap()
            .used_at()
            .is_none()
    );
    let history = w.prompts.history(&viewer(), "kyc-summary").await.unwrap();
    assert!(history.label_moves.is_empty() && history.labels.is_empty());
    assert_eq!(w.store.tree_head(&tenant("acme")).await.unwrap().size, size);
}

#[tokio::test]
async fn another_tenants_prompts_are_not_found_on_every_method() {
    let w = World::new();
    with_versions(&w, 2).await;
    approve_move(&w, 2, "production").await;
    let g = globex_admin();
    let get = w
        .prompts
        .get_prompt(&g, "kyc-summary", &PromptSelector::Latest)
        .await;
    assert!(matches!(get, Err(PromptRegistryError::NotFound)));
    assert!(matches!(
        w.prompts.history(&g, "kyc-summary").await,
        Err(PromptRegistryError::NotFound)
    ));
    assert!(matches!(
        w.prompts.diff(&g, "kyc-summary", 1, 2).await,
        Err(PromptRegistryError::NotFound)
    ));
    assert!(matches!(
        w.prompts
            .update_prompt(&g, &corr(), "kyc-summary", "hijack", "x")
            .await,
        Err(PromptRegistryError::NotFound)
    ));
    assert!(matches!(
        w.prompts
            .move_label(&g, &corr(), "kyc-summary", "production", 2)
            .await,
        Err(PromptRegistryError::NotFound)
    ));
    // Globex may create its own prompt of the same name; acme's is untouched.
    w.prompts
        .register_prompt(&g, &corr(), "kyc-summary", "globex text", "own")
        .await
        .unwrap();
    let acme = w.prompts.history(&viewer(), "kyc-summary").await.unwrap();
    assert_eq!(acme.versions.len(), 2);
    assert!(acme.labels.is_empty());
}

#[tokio::test]
async fn diff_shows_removed_and_added_lines() {
    let w = World::new();
    w.prompts
        .register_prompt(
            &analyst(),
            &corr(),
            "p",
            "You are a bank assistant.\nBe brief.\nCite policy.",
            "first",
        )
        .await
        .unwrap();
    w.prompts
        .update_prompt(
            &analyst(),
            &corr(),
            "p",
            "You are a bank assistant.\nBe thorough.\nCite policy.",
            "depth",
        )
        .await
        .unwrap();
    let d = w.prompts.diff(&viewer(), "p", 1, 2).await.unwrap();
    assert_eq!(
        d,
        vec![
            DiffLine::Same("You are a bank assistant.".into()),
            DiffLine::Removed("Be brief.".into()),
            DiffLine::Added("Be thorough.".into()),
            DiffLine::Same("Cite policy.".into()),
        ]
    );
    assert!(matches!(
        w.prompts.diff(&viewer(), "p", 1, 9).await,
        Err(PromptRegistryError::NotFound)
    ));
}

fn apply(diff: &[DiffLine]) -> (Vec<String>, Vec<String>) {
    let mut old = Vec::new();
    let mut new = Vec::new();
    for l in diff {
        match l {
            DiffLine::Same(s) => {
                old.push(s.clone());
                new.push(s.clone());
            }
            DiffLine::Removed(s) => old.push(s.clone()),
            DiffLine::Added(s) => new.push(s.clone()),
        }
    }
    (old, new)
}

proptest! {
    /// A diff always reconstructs both sides exactly.
    #[test]
    fn a_diff_reconstructs_both_versions(a in proptest::collection::vec("[abc]{0,2}", 0..12), b in proptest::collection::vec("[abc]{0,2}", 0..12)) {
        let old = a.join("\n");
        let new = b.join("\n");
        let d = diff_lines(&old, &new);
        let (o, n) = apply(&d);
        prop_assert_eq!(o, old.lines().map(str::to_owned).collect::<Vec<_>>());
        prop_assert_eq!(n, new.lines().map(str::to_owned).collect::<Vec<_>>());
    }

    /// A diff keeps as many lines as can be kept: its unchanged lines are a longest common
    /// subsequence, measured by a plain recursive reference written here.
    #[test]
    fn a_diff_keeps_a_longest_common_subsequence(a in proptest::collection::vec("[abc]{0,1}", 0..9), b in proptest::collection::vec("[abc]{0,1}", 0..9)) {
        let d = diff_lines(&a.join("\n"), &b.join("\n"));
        let kept = d.iter().filter(|l| matches!(l, DiffLine::Same(_))).count();
        let a_lines: Vec<&str> = a.iter().map(String::as_str).collect();
        let b_lines: Vec<&str> = b.iter().map(String::as_str).collect();
        // `lines()` drops a trailing empty line, as the diff does.
        let trim = |v: &[&str]| -> usize {
            let joined = v.join("\n");
            joined.lines().count()
        };
        let (a_len, b_len) = (trim(&a_lines), trim(&b_lines));
        prop_assert_eq!(kept, reference_lcs(&a_lines[..a_len], &b_lines[..b_len]));
    }
}

/// The length of a longest common subsequence, by the textbook recursion (memoised).
fn reference_lcs(a: &[&str], b: &[&str]) -> usize {
    fn go(
        a: &[&str],
        b: &[&str],
        memo: &mut std::collections::HashMap<(usize, usize), usize>,
    ) -> usize {
        if a.is_empty() || b.is_empty() {
            return 0;
        }
        if let Some(&v) = memo.get(&(a.len(), b.len())) {
            return v;
        }
        let v = if a[0] == b[0] {
            1 + go(&a[1..], &b[1..], memo)
        } else {
            go(&a[1..], b, memo).max(go(a, &b[1..], memo))
        };
        memo.insert((a.len(), b.len()), v);
        v
    }
    go(a, b, &mut std::collections::HashMap::new())
}

/// Two different texts that share one line in their middles and the last line: up to 4,000,000
/// table cells (2,000 by 2,000 middle lines) the shared middle line is kept; one line more and
/// the middles are shown removed then added whole. The shared last line is kept either way, and
/// identical texts are all kept, each line once.
#[test]
fn diffs_of_large_middles_fall_back_past_four_million_cells() {
    let text = |prefix: &str, n: usize| {
        let mut lines: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        lines[n / 2] = "shared".into();
        lines.push("end".into());
        lines.join("\n")
    };
    let at_limit = diff_lines(&text("old", 2_000), &text("new", 2_000));
    assert!(at_limit.contains(&DiffLine::Same("shared".into())));
    assert_eq!(at_limit.last(), Some(&DiffLine::Same("end".into())));
    assert_eq!(at_limit.len(), 2 * 1_999 + 2);

    let past = diff_lines(&text("old", 2_001), &text("new", 2_000));
    assert!(!past.contains(&DiffLine::Same("shared".into())));
    assert_eq!(past.last(), Some(&DiffLine::Same("end".into())));
    assert_eq!(past.len(), 2_001 + 2_000 + 1);

    let same = "a\nb\nc";
    assert_eq!(
        diff_lines(same, same),
        vec![
            DiffLine::Same("a".into()),
            DiffLine::Same("b".into()),
            DiffLine::Same("c".into())
        ]
    );
}

/// A diff line prints as a unified diff's does: a space, `-` or `+`, then the line.
#[test]
fn diff_lines_print_with_their_marker() {
    assert_eq!(DiffLine::Same("x".into()).to_string(), " x");
    assert_eq!(DiffLine::Removed("x".into()).to_string(), "-x");
    assert_eq!(DiffLine::Added("x".into()).to_string(), "+x");
}

/// A change reason may be 4,096 bytes and no more.
#[tokio::test]
async fn a_change_reason_may_be_4096_bytes_and_no_more() {
    let w = World::new();
    w.prompts
        .register_prompt(&analyst(), &corr(), "p", "t1", &"r".repeat(4_096))
        .await
        .expect("exactly 4,096 bytes is allowed");
    let got = w
        .prompts
        .update_prompt(&analyst(), &corr(), "p", "t2", &"r".repeat(4_097))
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::Invalid(_))),
        "{got:?}"
    );
}

/// A template may be 256 KiB (262,144 bytes) and no more.
#[tokio::test]
async fn a_template_may_be_256_kib_and_no_more() {
    let w = World::new();
    let at_limit = "x".repeat(262_144);
    let registered = w
        .prompts
        .register_prompt(&analyst(), &corr(), "big", &at_limit, "r")
        .await
        .expect("exactly 256 KiB is allowed");
    assert_eq!(registered.version.template().len(), 262_144);
    let over = "y".repeat(262_145);
    let got = w
        .prompts
        .update_prompt(&analyst(), &corr(), "big", &over, "r")
        .await;
    assert!(
        matches!(got, Err(PromptRegistryError::Invalid(_))),
        "{got:?}"
    );
}

/// A version and its sealed form differ only in the template and the flag, in either order; any
/// other difference counts. A plaintext version's serialised form carries no `sealed` or
/// `erased` member (rows written before sealing existed read the same).
#[tokio::test]
async fn a_sealed_version_differs_from_its_plaintext_only_in_the_template() {
    let w = World::new();
    with_versions(&w, 2).await;
    let history = w.prompts.history(&analyst(), "kyc-summary").await.unwrap();
    let (v1, v2) = (&history.versions[0], &history.versions[1]);
    let sealed = v1
        .sealed_with("v1.tenant-dek-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())
        .unwrap();
    assert!(sealed.is_sealed() && !v1.is_sealed());
    assert!(v1.differs_only_in_template(&sealed));
    assert!(sealed.differs_only_in_template(v1));
    assert!(!v1.differs_only_in_template(v2), "another version number");
    let plain = serde_json::to_value(v1).unwrap();
    let members = plain.as_object().unwrap();
    assert!(
        !members.contains_key("sealed") && !members.contains_key("erased"),
        "{members:?}"
    );
    assert_eq!(serde_json::to_value(&sealed).unwrap()["sealed"], true);
}
