//! Data subjects: which identifiers are accepted (a rule written out here, not taken from the
//! code), that nothing is normalised, and that no error or `Debug` output repeats the identifier.

use airisk_core::security::data_subject::{DataSubject, SubjectPseudonym};
use proptest::prelude::*;

/// The documented rule: 1 to 128 bytes, each a visible ASCII character (0x21 to 0x7e).
fn documented_rule(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

proptest! {
    #[test]
    fn a_subject_is_accepted_exactly_when_the_documented_rule_says(s in "\\PC{0,140}|[!-~ ]{0,140}") {
        let parsed = DataSubject::parse(&s);
        prop_assert_eq!(parsed.is_ok(), documented_rule(&s));
        match parsed {
            Ok(subject) => {
                // Byte for byte: nothing trimmed, folded or normalised.
                prop_assert_eq!(subject.expose(), s.as_str());
                prop_assert_eq!(format!("{subject:?}"), "DataSubject(<redacted>)");
            }
            Err(e) => {
                if s.chars().count() >= 4 {
                    prop_assert!(!e.to_string().contains(&s), "{}", e);
                }
            }
        }
    }

    #[test]
    fn pseudonyms_are_distinct_for_distinct_subjects_and_stable_for_one(
        a in "[!-~]{1,32}", b in "[!-~]{1,32}"
    ) {
        let key = [7u8; 32];
        let pa = SubjectPseudonym::compute(&key, &DataSubject::parse(&a).unwrap());
        let pb = SubjectPseudonym::compute(&key, &DataSubject::parse(&b).unwrap());
        prop_assert_eq!(pa == pb, a == b);
        prop_assert_eq!(&pa, &SubjectPseudonym::compute(&key, &DataSubject::parse(&a).unwrap()));
        // Another tenant's pseudonym key gives another pseudonym.
        let other = SubjectPseudonym::compute(&[8u8; 32], &DataSubject::parse(&a).unwrap());
        prop_assert_ne!(pa, other);
    }
}

#[test]
fn a_pseudonym_prints_and_converts_to_its_64_hex_digits() {
    let hex = "0123456789abcdef".repeat(4);
    let pseudonym = SubjectPseudonym::parse(&hex).unwrap();
    assert_eq!(pseudonym.to_string(), hex);
    assert_eq!(String::from(pseudonym.clone()), hex);
    assert_eq!(SubjectPseudonym::try_from(hex.clone()).unwrap(), pseudonym);
}
