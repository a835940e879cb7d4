//! What an approver approves is what they could see: characters a reader would not see (tag
//! characters, bidi controls, zero-width and other format characters, controls, private-use and
//! unassigned code points) are refused in every field a person approves, with a typed error naming
//! the code point and its position, and nothing is written. Ordinary text of every script is
//! stored unchanged. Unassigned code points are accepted (they are not invisible) but displayed
//! escaped.

use airisk_core::governance::approval_workflow::{
    ApprovalError, ApprovalStatus, NewApprovalRequest, RequestedSubject,
};
use airisk_core::governance::audit_record::Outcome;
use airisk_core::governance::model_registry::ModelRegistryError;
use airisk_core::governance::prompt_registry::{PromptRegistryError, PromptSelector};
use airisk_core::governance::visible_text::{self, HiddenCharacter, HiddenClass, Segment};
use airisk_core::ports::GovernanceStore;
use airisk_testkit::fixtures::tenant;

use crate::support::*;

/// One of each kind the policy refuses, with the class it must be reported as.
const REFUSED: &[(char, HiddenClass)] = &[
    ('\u{E0041}', HiddenClass::Tag),      // TAG LATIN CAPITAL LETTER A
    ('\u{E0001}', HiddenClass::Tag),      // LANGUAGE TAG
    ('\u{E007F}', HiddenClass::Tag),      // CANCEL TAG
    ('\u{202A}', HiddenClass::Bidi),      // LEFT-TO-RIGHT EMBEDDING
    ('\u{202B}', HiddenClass::Bidi),      // RIGHT-TO-LEFT EMBEDDING
    ('\u{202C}', HiddenClass::Bidi),      // POP DIRECTIONAL FORMATTING
    ('\u{202D}', HiddenClass::Bidi),      // LEFT-TO-RIGHT OVERRIDE
    ('\u{202E}', HiddenClass::Bidi),      // RIGHT-TO-LEFT OVERRIDE
    ('\u{2066}', HiddenClass::Bidi),      // LEFT-TO-RIGHT ISOLATE
    ('\u{2067}', HiddenClass::Bidi),      // RIGHT-TO-LEFT ISOLATE
    ('\u{2068}', HiddenClass::Bidi),      // FIRST STRONG ISOLATE
    ('\u{2069}', HiddenClass::Bidi),      // POP DIRECTIONAL ISOLATE
    ('\u{200E}', HiddenClass::Bidi),      // LEFT-TO-RIGHT MARK
    ('\u{200F}', HiddenClass::Bidi),      // RIGHT-TO-LEFT MARK
    ('\u{061C}', HiddenClass::Bidi),      // ARABIC LETTER MARK
    ('\u{200B}', HiddenClass::ZeroWidth), // ZERO WIDTH SPACE
    ('\u{200C}', HiddenClass::ZeroWidth), // ZERO WIDTH NON-JOINER
    ('\u{200D}', HiddenClass::ZeroWidth), // ZERO WIDTH JOINER
    ('\u{2060}', HiddenClass::ZeroWidth), // WORD JOINER
    ('\u{FEFF}', HiddenClass::ZeroWidth), // BYTE ORDER MARK
    ('\u{00AD}', HiddenClass::ZeroWidth), // SOFT HYPHEN
    ('\u{2062}', HiddenClass::Format),    // INVISIBLE TIMES
    ('\u{1D173}', HiddenClass::Format),   // MUSICAL SYMBOL BEGIN BEAM
    ('\u{0007}', HiddenClass::Control),   // BELL
    ('\u{001B}', HiddenClass::Control),   // ESCAPE
    ('\u{007F}', HiddenClass::Control),   // DELETE
    ('\u{0085}', HiddenClass::Control),   // NEXT LINE
    ('\u{2028}', HiddenClass::LineSeparator),
    ('\u{2029}', HiddenClass::LineSeparator),
    ('\u{E000}', HiddenClass::PrivateUse),
    ('\u{F0000}', HiddenClass::PrivateUse),
    ('\u{FFFF}', HiddenClass::Unassigned),   // a noncharacter
    ('\u{10FFFE}', HiddenClass::Unassigned), // a noncharacter
    ('\u{FDD0}', HiddenClass::Unassigned),   // a noncharacter
    ('\u{034F}', HiddenClass::Blank),        // COMBINING GRAPHEME JOINER
    ('\u{3164}', HiddenClass::Blank),        // HANGUL FILLER
    ('\u{2800}', HiddenClass::Blank),        // BRAILLE PATTERN BLANK
    ('\u{FE00}', HiddenClass::Blank),        // VARIATION SELECTOR-1
    ('\u{E0100}', HiddenClass::Blank),       // VARIATION SELECTOR-17
];

/// Text a person reads as what it is: every one must be accepted and stored unchanged.
const ORDINARY: &[&str] = &[
    // A homoglyph-free control sentence.
    "Summarise the customer's KYC file in three bullet points.",
    "Zürich, café, naïve, Ångström, São Paulo, Łódź, e\u{0301}te\u{0301}",
    "请总结以下文件。日本語のテキスト。한국어 문서를 요약하세요.",
    "لخص المستند التالي في ثلاث نقاط",
    "סכם את המסמך הבא בשלוש נקודות",
    "Emoji: 😀 👍🏽 🇩🇪 ❤\u{FE0F} ☺\u{FE0E} 1\u{FE0F}\u{20E3}",
    "Lines\nwith LF,\n\ttabs, and\u{00A0}no-break\u{3000}spaces",
    "An unassigned code point \u{0378} shows as a box, not as nothing",
];

fn template_with(c: char) -> String {
    format!("Summarise {{doc}} for the analyst.\nBe brief{c} and factual.")
}

fn assert_names(e: &HiddenCharacter, field: &str, c: char, class: HiddenClass) {
    assert_eq!(e.field, field);
    assert_eq!(e.character, c);
    assert_eq!(e.class, class, "class of U+{:04X}", u32::from(c));
    assert_eq!(e.code_point(), format!("U+{:04X}", u32::from(c)));
    let message = e.to_string();
    assert!(message.contains(&e.code_point()), "{message}");
    assert!(message.contains(field), "{message}");
}

#[tokio::test]
async fn every_hidden_character_is_refused_in_a_template_by_code_point_and_position() {
    let w = World::new();
    for &(c, class) in REFUSED {
        let template = template_with(c);
        let err = w
            .prompts
            .register_prompt(&analyst(), &corr(), "kyc-summary", &template, "first")
            .await
            .unwrap_err();
        let PromptRegistryError::HiddenCharacter(e) = err else {
            panic!(
                "U+{:04X}: expected HiddenCharacter, got {err:?}",
                u32::from(c)
            );
        };
        assert_names(&e, "template", c, class);
        // "…analyst.\n" is 33 characters; "Be brief" 8 more: the character is the 42nd, on
        // line 2, column 9.
        assert_eq!(
            (e.position, e.line, e.column),
            (42, 2, 9),
            "U+{:04X}",
            u32::from(c)
        );
    }
    // Nothing was written: no version, and no success record in the ledger.
    assert!(
        w.store
            .prompt_versions(
                &tenant("acme"),
                &airisk_core::governance::prompt_registry::PromptName::parse("kyc-summary")
                    .unwrap(),
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !w.audit_trail("acme")
            .await
            .iter()
            .any(|(a, o)| a == "prompt.register" && *o == Outcome::Success)
    );
}

#[tokio::test]
async fn carriage_returns_and_stacked_presentation_selectors_are_refused() {
    let w = World::new();
    for (template, c, position) in [
        ("one\rtwo", '\r', 4),
        ("one\r\ntwo", '\r', 4),
        ("\u{FE0F}starts with a selector", '\u{FE0F}', 1),
        ("love \u{2764}\u{FE0F}\u{FE0F}", '\u{FE0F}', 8),
    ] {
        let err = w
            .prompts
            .register_prompt(&analyst(), &corr(), "p", template, "first")
            .await
            .unwrap_err();
        let PromptRegistryError::HiddenCharacter(e) = err else {
            panic!("{template:?}: expected HiddenCharacter, got {err:?}");
        };
        assert_eq!((e.character, e.position), (c, position), "{template:?}");
    }
}

#[tokio::test]
async fn an_update_or_change_reason_with_hidden_text_is_refused_and_makes_no_version() {
    let w = World::new();
    w.prompts
        .register_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc}",
            "first",
        )
        .await
        .unwrap();
    let err = w
        .prompts
        .update_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc}\u{E0049}\u{E0067}\u{E006E}\u{E006F}\u{E0072}\u{E0065}",
            "tweak",
        )
        .await
        .unwrap_err();
    let PromptRegistryError::HiddenCharacter(e) = err else {
        panic!("expected HiddenCharacter, got {err:?}");
    };
    assert_eq!(
        (e.code_point(), e.position, e.line, e.column),
        ("U+E0049".to_owned(), 16, 1, 16)
    );
    let err = w
        .prompts
        .update_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc} briefly",
            "tidy \u{202E}txt.exe",
        )
        .await
        .unwrap_err();
    let PromptRegistryError::HiddenCharacter(e) = err else {
        panic!("expected HiddenCharacter, got {err:?}");
    };
    assert_names(&e, "change_reason", '\u{202E}', HiddenClass::Bidi);
    let latest = w
        .prompts
        .get_prompt(&viewer(), "kyc-summary", &PromptSelector::Latest)
        .await
        .unwrap();
    assert_eq!(latest.version(), 1);
}

#[tokio::test]
async fn justifications_and_decision_reasons_with_hidden_text_are_refused() {
    let w = World::new();
    w.prompts
        .register_prompt(
            &analyst(),
            &corr(),
            "kyc-summary",
            "Summarise {doc}",
            "first",
        )
        .await
        .unwrap();
    let subject = RequestedSubject::PromptLabel {
        name: "kyc-summary".into(),
        version: 1,
        label: "production".into(),
    };
    let err = w
        .workflow
        .request_approval(
            &analyst(),
            &corr(),
            NewApprovalRequest {
                subject: subject.clone(),
                justification: "evaluated\u{200B} on the golden set".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap_err();
    let ApprovalError::HiddenCharacter(e) = err else {
        panic!("expected HiddenCharacter, got {err:?}");
    };
    assert_names(&e, "justification", '\u{200B}', HiddenClass::ZeroWidth);
    assert_eq!(e.position, 10);

    let r = w
        .workflow
        .request_approval(
            &analyst(),
            &corr(),
            NewApprovalRequest {
                subject,
                justification: "evaluated on the golden set".into(),
                required_approvals: 1,
                expires_in: None,
            },
        )
        .await
        .unwrap()
        .request;
    let approve = w
        .workflow
        .approve(&approver(), &corr(), r.id(), "fine\u{2066} by me")
        .await
        .unwrap_err();
    assert!(matches!(&approve, ApprovalError::HiddenCharacter(e) if e.character == '\u{2066}'));
    let reject = w
        .workflow
        .reject(&approver(), &corr(), r.id(), "no\u{FEFF}")
        .await
        .unwrap_err();
    assert!(matches!(&reject, ApprovalError::HiddenCharacter(e) if e.character == '\u{FEFF}'));
    let cancel = w
        .workflow
        .cancel(&analyst(), &corr(), r.id(), "withdrawn\u{00AD}")
        .await
        .unwrap_err();
    assert!(matches!(&cancel, ApprovalError::HiddenCharacter(e) if e.character == '\u{00AD}'));
    // Still pending, nothing decided.
    let now = w.workflow.get(&viewer(), r.id()).await.unwrap();
    assert_eq!(now.status(), ApprovalStatus::Pending);
    assert!(now.approvals().is_empty());
}

#[tokio::test]
async fn model_fields_shown_to_approvers_with_hidden_text_are_refused() {
    let w = World::new();
    let mut input = register_input("credit", "1.0");
    input.justification = "beats champion\u{200D}".into();
    let err = w
        .models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelRegistryError::Approval(ApprovalError::HiddenCharacter(e)) if e.field == "justification" && e.character == '\u{200D}'),
        "{err:?}"
    );

    let mut input = register_input("credit", "1.0");
    input.artifact_uri = "s3://models/credit\u{202E}xnno.exe".into();
    let err = w
        .models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelRegistryError::HiddenCharacter(e) if e.field == "artifact_uri"),
        "{err:?}"
    );

    let mut input = register_input("credit", "1.0");
    input.metadata = Some(serde_json::json!({"owner": {"notes": ["ok", "hidden\u{E0041}"]}}));
    let err = w
        .models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap_err();
    let ModelRegistryError::HiddenCharacter(e) = err else {
        panic!("expected HiddenCharacter, got {err:?}");
    };
    assert_names(&e, "metadata.owner.notes[1]", '\u{E0041}', HiddenClass::Tag);

    let mut input = register_input("credit", "1.0");
    input.metadata = Some(serde_json::json!({"own\u{200B}er": "risk team"}));
    let err = w
        .models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ModelRegistryError::HiddenCharacter(e) if e.field == "metadata key"),
        "{err:?}"
    );
    assert!(
        w.store
            .model(
                &tenant("acme"),
                &airisk_core::governance::model_registry::ModelName::parse("credit").unwrap(),
                &airisk_core::governance::model_registry::ModelVersionTag::parse("1.0").unwrap(),
            )
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ordinary_text_of_every_script_is_stored_unchanged() {
    let w = World::new();
    for (i, text) in ORDINARY.iter().enumerate() {
        let name = format!("p{i}");
        let change = w
            .prompts
            .register_prompt(&analyst(), &corr(), &name, text, text)
            .await
            .unwrap_or_else(|e| panic!("{text:?} was refused: {e}"));
        assert_eq!(change.version.template(), *text);
        assert_eq!(change.version.change_reason(), *text);
        let read = w
            .prompts
            .get_prompt(&viewer(), &name, &PromptSelector::Latest)
            .await
            .unwrap();
        assert_eq!(read.template().as_bytes(), text.as_bytes());
        assert!(visible_text::check("t", text).is_ok());
        if !text.contains('\u{0378}') {
            assert_eq!(visible_text::segments(text), vec![Segment::Visible(text)]);
        }
    }
    let mut input = register_input("credit", "1.0");
    input.justification = ORDINARY[2].to_owned();
    input.metadata = Some(serde_json::json!({"région": ORDINARY[3], "emoji": ORDINARY[5]}));
    w.models
        .register_model(&admin(), &corr(), input)
        .await
        .unwrap();
}

#[test]
fn old_text_renders_every_hidden_character_escaped() {
    let text = "Be brief.\u{E0049}\u{E0067}\n\u{202E}gnp.exe";
    assert_eq!(
        visible_text::escape(text),
        "Be brief.⟨U+E0049⟩⟨U+E0067⟩\n⟨U+202E⟩gnp.exe"
    );
    let hidden: Vec<char> = visible_text::segments(text)
        .iter()
        .filter_map(|s| match s {
            Segment::Hidden(c, _) => Some(*c),
            Segment::Visible(_) => None,
        })
        .collect();
    assert_eq!(hidden, vec!['\u{E0049}', '\u{E0067}', '\u{202E}']);
}

/// Each class has the description the refusal names it by (written out here), and the refusal's
/// message carries it with the code point.
#[test]
fn each_hidden_class_is_described_in_words_in_the_refusal() {
    let cases = [
        (HiddenClass::Tag, "an invisible tag character", '\u{E0041}'),
        (
            HiddenClass::Bidi,
            "a bidirectional text control",
            '\u{202E}',
        ),
        (HiddenClass::ZeroWidth, "a zero-width character", '\u{200B}'),
        (
            HiddenClass::Format,
            "an invisible format character",
            '\u{0600}',
        ),
        (HiddenClass::Control, "a control character", '\u{7}'),
        (
            HiddenClass::LineSeparator,
            "a line or paragraph separator",
            '\u{2028}',
        ),
        (
            HiddenClass::PrivateUse,
            "a private-use character",
            '\u{E000}',
        ),
        (
            HiddenClass::Unassigned,
            "a noncharacter or unassigned code point",
            '\u{FDD0}',
        ),
        (
            HiddenClass::Blank,
            "a character that renders as nothing",
            '\u{3164}',
        ),
    ];
    for (class, words, c) in cases {
        assert_eq!(class.describe(), words);
        let e = visible_text::check("justification", &format!("ok {c} ok")).unwrap_err();
        assert_eq!(e.class, class, "U+{:04X}", u32::from(c));
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "justification contains {words} U+{:04X} at character 4",
                u32::from(c)
            )),
            "{message}"
        );
    }
}

/// The refused ranges are as few as can be: ascending, and no range ends right before the next
/// begins (adjacent ones are merged), so a schema `pattern` built from them stays short.
#[test]
fn refused_ranges_are_merged_wherever_they_touch() {
    let ranges = visible_text::refused_ranges();
    assert!(!ranges.is_empty());
    for pair in ranges.windows(2) {
        let ((_, hi), (lo, _)) = (pair[0], pair[1]);
        assert!(
            u32::from(hi) + 1 < u32::from(lo),
            "U+{:04X} and U+{:04X} should be one range",
            u32::from(hi),
            u32::from(lo)
        );
    }
    // U+200B..U+200F (zero-width space, joiners, LRM, RLM) are refused side by side.
    assert!(
        ranges
            .iter()
            .any(|&(lo, hi)| lo <= '\u{200B}' && '\u{200F}' <= hi),
        "{ranges:?}"
    );
}
