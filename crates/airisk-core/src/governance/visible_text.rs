//! What a person approves is what they could see: the one definition of the characters refused
//! in text a person reads as part of a decision (prompt templates, change reasons,
//! justifications, decision reasons, artifact URIs, model metadata).
//!
//! A prompt version once carried instructions in invisible Unicode tag characters (U+E0000
//! block): the approver's diff showed only the visible line, they approved, and the hidden text
//! went to production. Bidi controls reorder what is shown without changing what is stored, and
//! zero-width characters hide content between visible letters. The policy is to **refuse** such
//! text (fail closed) rather than accept and escape it: an escaped rendering helps only where
//! every reader uses it, while a refusal keeps the hidden text out of the store, the ledger and
//! every downstream consumer (a model reads the bytes, not the console).
//!
//! # The refused set
//!
//! A character is refused ([`hidden_class`] says why) when it is, by Unicode general category
//! (the tables of the `unicode-properties` crate, Unicode 16 or later):
//!
//! * **Cf, format**: tag characters U+E0001, U+E0020–U+E007F; bidi embeddings, overrides and
//!   isolates U+202A–U+202E, U+2066–U+2069 and the marks U+200E, U+200F, U+061C; zero-width
//!   space, non-joiner and joiner U+200B–U+200D; word joiner and invisible operators
//!   U+2060–U+2064; byte-order mark U+FEFF; soft hyphen U+00AD; and every other format character;
//! * **Cc, control**, except tab (U+0009) and line feed (U+000A). Carriage return (U+000D) is
//!   refused too, also before a line feed: a lone CR shows as a line break that a line diff
//!   does not see, and the ledger keeps a reason's lines LF-separated. Line breaks are LF; the
//!   console turns a textarea's CR LF into LF before it submits;
//! * **Zl, Zp**: U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR, line breaks that a line
//!   diff does not see either;
//! * **Co, private use**: no agreed glyph (a font may draw anything, or nothing), so a reader
//!   cannot know what they stand for; and the **noncharacters** U+FDD0–U+FDEF and U+xFFFE/U+xFFFF
//!   of every plane, never meant for interchange;
//! * **default-ignorable characters of other categories**, listed explicitly because they render
//!   as nothing: U+034F COMBINING GRAPHEME JOINER, the Hangul fillers U+115F, U+1160, U+3164,
//!   U+FFA0, the Khmer inherent vowels U+17B4, U+17B5, the Mongolian variation selectors
//!   U+180B–U+180D, U+180F, U+2800 BRAILLE PATTERN BLANK (renders blank, a known filler), and
//!   the variation selectors U+FE00–U+FE0D and U+E0100–U+E01EF (a run of them after one emoji
//!   can smuggle arbitrary bytes).
//!
//! The two emoji presentation selectors U+FE0E and U+FE0F are kept, but only one at a time after
//! a visible character (`❤️` is U+2764 U+FE0F): a second selector in a row is refused, so they
//! cannot carry a hidden payload.
//!
//! Ordinary text is unaffected: letters of every script (Latin with accents, CJK, Arabic and
//! Hebrew letters — their right-to-left display comes from the letters themselves, not from
//! controls), combining accents, emoji, ordinary and no-break spaces. Emoji sequences glued by
//! U+200D ZERO WIDTH JOINER (family or profession emoji) and subdivision flags (tag characters)
//! are refused with the rest: write them as separate emoji or in words.
//!
//! Code points **unassigned** in this build's Unicode tables (Cn, noncharacters aside) are
//! accepted: they are not invisible (browsers and terminals draw a replacement box), and the
//! console shows each one escaped and highlighted anyway ([`display_class`], [`segments`]), so
//! one assigned later as a format character still cannot pass unseen there. Refusing them would
//! also make the rule depend on the Unicode version of every client that validates it.
//!
//! Homoglyphs (a Cyrillic `а` for a Latin `a`) are visible characters and are not refused here:
//! an approver sees a letter, and the diff marks the line as changed.

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Why a character is refused in text a person approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HiddenClass {
    /// A Unicode tag character (U+E0000 block): invisible, can spell out hidden instructions.
    Tag,
    /// A bidirectional embedding, override, isolate or mark: changes the order shown.
    Bidi,
    /// A zero-width character (space, joiner, non-joiner, word joiner, BOM, soft hyphen…).
    ZeroWidth,
    /// Any other format character (general category Cf).
    Format,
    /// A control character other than tab and line feed (category Cc; CR included).
    Control,
    /// A line or paragraph separator (U+2028, U+2029) that a line diff does not see.
    LineSeparator,
    /// A private-use code point: no agreed glyph.
    PrivateUse,
    /// A noncharacter (refused), or, for display only, a code point unassigned in this build's
    /// Unicode tables (accepted, shown escaped).
    Unassigned,
    /// A default-ignorable character that renders as nothing (fillers, variation selectors…).
    Blank,
}

impl HiddenClass {
    /// A short description, for messages.
    pub const fn describe(self) -> &'static str {
        match self {
            HiddenClass::Tag => "an invisible tag character",
            HiddenClass::Bidi => "a bidirectional text control",
            HiddenClass::ZeroWidth => "a zero-width character",
            HiddenClass::Format => "an invisible format character",
            HiddenClass::Control => "a control character",
            HiddenClass::LineSeparator => "a line or paragraph separator",
            HiddenClass::PrivateUse => "a private-use character",
            HiddenClass::Unassigned => "a noncharacter or unassigned code point",
            HiddenClass::Blank => "a character that renders as nothing",
        }
    }
}

/// Default-ignorable code points outside Cf/Cc/Co/Cn that render as nothing (see the module
/// documentation). Inclusive ranges.
const BLANK_RANGES: &[(u32, u32)] = &[
    (0x034F, 0x034F),   // COMBINING GRAPHEME JOINER (Mn)
    (0x115F, 0x1160),   // HANGUL CHOSEONG/JUNGSEONG FILLER (Lo)
    (0x17B4, 0x17B5),   // KHMER VOWEL INHERENT AQ/AA (Mn)
    (0x180B, 0x180D),   // MONGOLIAN FREE VARIATION SELECTOR ONE..THREE (Mn)
    (0x180F, 0x180F),   // MONGOLIAN FREE VARIATION SELECTOR FOUR (Mn)
    (0x2800, 0x2800),   // BRAILLE PATTERN BLANK (So)
    (0x3164, 0x3164),   // HANGUL FILLER (Lo)
    (0xFE00, 0xFE0D),   // VARIATION SELECTOR-1..14 (Mn)
    (0xFFA0, 0xFFA0),   // HALFWIDTH HANGUL FILLER (Lo)
    (0xE0100, 0xE01EF), // VARIATION SELECTOR-17..256 (Mn)
];

/// The emoji presentation selectors kept after a visible character (VS15, VS16).
const PRESENTATION_SELECTORS: [char; 2] = ['\u{FE0E}', '\u{FE0F}'];

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let u = u32::from(c);
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Why `c` is refused in approved text, judged alone; `None` if it may appear. The presentation
/// selectors U+FE0E/U+FE0F depend on their neighbour (allowed once after a visible character)
/// and are judged by [`check`]; alone they are reported as allowed.
pub fn hidden_class(c: char) -> Option<HiddenClass> {
    let u = u32::from(c);
    if (0xE0000..=0xE007F).contains(&u) {
        return Some(HiddenClass::Tag);
    }
    if matches!(u, 0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069) {
        return Some(HiddenClass::Bidi);
    }
    if matches!(u, 0x00AD | 0x180E | 0x200B..=0x200D | 0x2060 | 0xFEFF) {
        return Some(HiddenClass::ZeroWidth);
    }
    if matches!(c, '\t' | '\n') || PRESENTATION_SELECTORS.contains(&c) {
        return None;
    }
    if in_ranges(c, BLANK_RANGES) {
        return Some(HiddenClass::Blank);
    }
    match c.general_category() {
        GeneralCategory::Format => Some(HiddenClass::Format),
        GeneralCategory::Control => Some(HiddenClass::Control),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some(HiddenClass::LineSeparator)
        }
        GeneralCategory::PrivateUse => Some(HiddenClass::PrivateUse),
        GeneralCategory::Unassigned if (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE => {
            Some(HiddenClass::Unassigned)
        }
        GeneralCategory::Surrogate => Some(HiddenClass::Unassigned),
        _ => None,
    }
}

/// What a display must escape: every refused character ([`hidden_class`]), and also every code
/// point unassigned in this build's Unicode tables (accepted on input, but a newer renderer may
/// know it as a format character and draw nothing).
pub fn display_class(c: char) -> Option<HiddenClass> {
    hidden_class(c).or_else(|| {
        (c.general_category() == GeneralCategory::Unassigned).then_some(HiddenClass::Unassigned)
    })
}

/// A refused character found in a field: which, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} contains {} U+{:04X} at character {position} (line {line}, column {column}); \
     invisible, bidirectional-control and other hidden characters are refused in text a person \
     approves, so that what is approved is what was seen",
    class.describe(),
    u32::from(*character)
)]
pub struct HiddenCharacter {
    /// The field, e.g. `template` or `metadata.owner`.
    pub field: String,
    /// The character.
    pub character: char,
    /// Why it is refused.
    pub class: HiddenClass,
    /// Its position in the field, in characters (Unicode scalar values) from 1.
    pub position: usize,
    /// Its line, from 1 (lines end at LF).
    pub line: usize,
    /// Its column in that line, in characters from 1.
    pub column: usize,
}

impl HiddenCharacter {
    /// The code point as `U+XXXX` (at least four hex digits).
    pub fn code_point(&self) -> String {
        format!("U+{:04X}", u32::from(self.character))
    }
}

/// Walks `text`, calling `found` for each refused character with its 0-based character index,
/// 1-based line and column; stops early when `found` returns `false`.
fn scan(
    text: &str,
    classify: fn(char) -> Option<HiddenClass>,
    mut found: impl FnMut(usize, usize, usize, char, HiddenClass) -> bool,
) {
    let (mut line, mut column) = (1usize, 0usize);
    let mut previous: Option<char> = None;
    for (index, c) in text.chars().enumerate() {
        column += 1;
        let class = match c {
            c if PRESENTATION_SELECTORS.contains(&c) => match previous {
                // A selector needs a visible base: not at the start, not after a line break or
                // tab, another selector, or a refused character.
                None | Some('\n' | '\t') => Some(HiddenClass::Blank),
                Some(p) if PRESENTATION_SELECTORS.contains(&p) || classify(p).is_some() => {
                    Some(HiddenClass::Blank)
                }
                Some(_) => None,
            },
            c => classify(c),
        };
        if let Some(class) = class
            && !found(index, line, column, c, class)
        {
            return;
        }
        if c == '\n' {
            line += 1;
            column = 0;
        }
        previous = Some(c);
    }
}

/// Checks that `text` holds no refused character.
///
/// # Errors
/// [`HiddenCharacter`] naming the first refused character, `field`, its position, line and
/// column.
pub fn check(field: &str, text: &str) -> Result<(), HiddenCharacter> {
    let mut first = None;
    scan(
        text,
        hidden_class,
        |index, line, column, character, class| {
            first = Some(HiddenCharacter {
                field: field.to_owned(),
                character,
                class,
                position: index + 1,
                line,
                column,
            });
            false
        },
    );
    first.map_or(Ok(()), Err)
}

/// Checks every string of a JSON value: object keys and string values, recursively. Fields are
/// named by their path (`metadata.owner`, `metadata.tags[2]`).
///
/// # Errors
/// [`HiddenCharacter`] for the first refused character found.
pub fn check_json(field: &str, value: &serde_json::Value) -> Result<(), HiddenCharacter> {
    match value {
        serde_json::Value::String(s) => check(field, s),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json(&format!("{field}[{i}]"), v)),
        serde_json::Value::Object(map) => check_object(field, map),
        _ => Ok(()),
    }
}

/// [`check_json`] of a JSON object: every key and, recursively, every string value.
///
/// # Errors
/// [`HiddenCharacter`] for the first refused character found.
pub fn check_object(
    field: &str,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), HiddenCharacter> {
    map.iter().try_for_each(|(k, v)| {
        check(&format!("{field} key"), k)?;
        check_json(&format!("{field}.{k}"), v)
    })
}

/// Every code point refused whatever its neighbours ([`hidden_class`] is `Some`), as inclusive
/// ranges in ascending order: for documents that must state the rule, such as a JSON Schema
/// `pattern`. The presentation selectors U+FE0E/U+FE0F are not included (they are allowed once
/// after a visible character), nor are surrogates (never in a Rust string).
pub fn refused_ranges() -> Vec<(char, char)> {
    let mut out: Vec<(char, char)> = Vec::new();
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        if hidden_class(c).is_none() {
            continue;
        }
        match out.last_mut() {
            Some((_, hi)) if char::from_u32(u32::from(*hi) + 1) == Some(c) => *hi = c,
            _ => out.push((c, c)),
        }
    }
    out
}

/// A piece of text split for display: visible runs, and each refused character on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text that shows as itself.
    Visible(&'a str),
    /// A refused character, to be shown escaped (e.g. `⟨U+E0041⟩`) and highlighted.
    Hidden(char, HiddenClass),
}

impl fmt::Display for Segment<'_> {
    /// Visible text as itself; a hidden character as `⟨U+XXXX⟩`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Visible(s) => f.write_str(s),
            Segment::Hidden(c, _) => write!(f, "\u{27E8}U+{:04X}\u{27E9}", u32::from(*c)),
        }
    }
}

/// Splits `text` into visible runs and characters to show escaped ([`display_class`]: refused
/// ones, and unassigned code points), for renderers of approved text: data written before the
/// check existed may hold refused characters.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut hidden: Vec<(usize, char, HiddenClass)> = Vec::new();
    scan(text, display_class, |index, _, _, c, class| {
        hidden.push((index, c, class));
        true
    });
    if hidden.is_empty() {
        if !text.is_empty() {
            out.push(Segment::Visible(text));
        }
        return out;
    }
    let mut wanted = hidden.into_iter().peekable();
    let mut start = 0usize;
    for (index, (byte, c)) in text.char_indices().enumerate() {
        if wanted.peek().is_some_and(|&(i, _, _)| i == index)
            && let Some((_, _, class)) = wanted.next()
        {
            if let Some(run) = text.get(start..byte).filter(|r| !r.is_empty()) {
                out.push(Segment::Visible(run));
            }
            out.push(Segment::Hidden(c, class));
            start = byte + c.len_utf8();
        }
    }
    if let Some(run) = text.get(start..).filter(|r| !r.is_empty()) {
        out.push(Segment::Visible(run));
    }
    out
}

/// `text` with every refused character written as `⟨U+XXXX⟩`, for plain-text displays.
pub fn escape(text: &str) -> String {
    segments(text).iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests: fail loudly

    use super::*;

    #[test]
    fn positions_count_characters_lines_and_columns_from_one() {
        let e = check("template", "é1\nab\u{E0041}").unwrap_err();
        assert_eq!((e.position, e.line, e.column), (6, 2, 3));
        assert_eq!(e.code_point(), "U+E0041");
        assert_eq!(e.class, HiddenClass::Tag);
    }

    #[test]
    fn line_breaks_are_lf_and_every_cr_is_refused() {
        assert!(check("t", "a\nb\n\tc").is_ok());
        let e = check("t", "a\rb").unwrap_err();
        assert_eq!((e.character, e.position), ('\r', 2));
        let e = check("t", "a\r\nb").unwrap_err();
        assert_eq!(
            (e.character, e.position, e.class),
            ('\r', 2, HiddenClass::Control)
        );
    }

    #[test]
    fn one_presentation_selector_after_a_visible_character_only() {
        assert!(check("t", "I \u{2764}\u{FE0F} it").is_ok());
        assert!(check("t", "\u{FE0F}start").is_err());
        let e = check("t", "\u{2764}\u{FE0F}\u{FE0F}").unwrap_err();
        assert_eq!(e.position, 3);
    }

    #[test]
    fn refused_ranges_agree_with_hidden_class() {
        let ranges = refused_ranges();
        assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0));
        for &(lo, hi) in &ranges {
            assert!(hidden_class(lo).is_some() && hidden_class(hi).is_some());
        }
        for c in [
            'a', 'é', '中', '\u{05D0}', '\u{0627}', '😀', '\n', '\t', '\u{FE0F}',
        ] {
            assert!(
                !ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)),
                "{c:?}"
            );
        }
        for c in [
            '\u{E0041}',
            '\u{202E}',
            '\u{200D}',
            '\r',
            '\u{FDD0}',
            '\u{10FFFF}',
        ] {
            assert!(
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn unassigned_code_points_are_accepted_but_displayed_escaped() {
        assert!(check("t", "a\u{0378}b").is_ok());
        assert_eq!(escape("a\u{0378}b"), "a⟨U+0378⟩b");
        assert_eq!(display_class('\u{0378}'), Some(HiddenClass::Unassigned));
    }

    #[test]
    fn segments_escape_hidden_characters_and_keep_the_rest() {
        let s = "ok\u{E0041}\u{E0042} fine\u{202E}";
        assert_eq!(escape(s), "ok⟨U+E0041⟩⟨U+E0042⟩ fine⟨U+202E⟩");
        assert_eq!(segments("plain"), vec![Segment::Visible("plain")]);
        assert!(segments("").is_empty());
    }
}
