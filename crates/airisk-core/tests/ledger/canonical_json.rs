//! RFC 8785 canonical JSON, checked with the RFC's own examples.

use airisk_core::ledger::{
    CanonicalJsonError, MAX_SAFE_INTEGER, serialize_canonical_json, to_canonical_json,
};
use serde_json::{Value, json};

/// serde_json without its `float_roundtrip` feature may round decimal literals to a neighbouring
/// double (`333333333.33333329` becomes `…325`), so number literals are parsed with the standard
/// library's correctly rounded parser: this suite tests canonicalisation, not serde_json's parser.
fn number(literal: &str) -> Value {
    Value::from(literal.parse::<f64>().unwrap())
}

#[test]
fn rfc_8785_section_3_2_2_example() {
    let mut value: Value = serde_json::from_str(
        r#"{
          "numbers": [],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#,
    )
    .unwrap();
    value["numbers"] = [
        "333333333.33333329",
        "1E30",
        "4.50",
        "2e-3",
        "0.000000000000000000000000001",
    ]
    .into_iter()
    .map(number)
    .collect();
    assert_eq!(
        to_canonical_json(&value).unwrap(),
        "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
         \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
    );
}

#[test]
fn rfc_8785_section_3_2_3_keys_sort_by_utf16_code_units() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    // Expected order: \r, 1, \u0080, ö, €, 😀 (d83d de00), דּ (fb33). UTF-8 byte order would put
    // the emoji (f0 ..) last.
    assert_eq!(
        to_canonical_json(&value).unwrap(),
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
         \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
         \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
}

#[test]
fn numbers_print_as_ecmascript_does() {
    for (input, expected) in [
        ("1e30", "1e+30"),
        ("4.50", "4.5"),
        ("2e-3", "0.002"),
        ("0.000001", "0.000001"),
        ("1e-7", "1e-7"),
        ("-0.0", "0"),
        ("0", "0"),
        ("-1", "-1"),
        ("100", "100"),
        ("1.0", "1"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("123456789012345680000", "123456789012345680000"),
    ] {
        assert_eq!(
            to_canonical_json(&number(input)).unwrap(),
            expected,
            "{input}"
        );
    }
}

#[test]
fn rfc_8785_appendix_b_number_samples() {
    for (bits, expected) in [
        (0x0000000000000000u64, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ] {
        let value = Value::from(f64::from_bits(bits));
        assert_eq!(to_canonical_json(&value).unwrap(), expected, "{bits:#018x}");
    }
}

#[test]
fn integers_beyond_the_safe_range_are_refused_not_rounded() {
    assert_eq!(
        to_canonical_json(&json!(MAX_SAFE_INTEGER)).unwrap(),
        "9007199254740991"
    );
    assert_eq!(
        to_canonical_json(&json!(-(MAX_SAFE_INTEGER as i64))).unwrap(),
        "-9007199254740991"
    );
    for value in [
        json!(MAX_SAFE_INTEGER + 1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-(MAX_SAFE_INTEGER as i64) - 1),
    ] {
        assert!(
            matches!(
                to_canonical_json(&value),
                Err(CanonicalJsonError::UnsafeInteger { .. })
            ),
            "{value}"
        );
    }
    assert_eq!(
        to_canonical_json(&json!({"a": [9007199254740993u64]})),
        Err(CanonicalJsonError::UnsafeInteger {
            value: 9007199254740993
        })
    );
}

#[test]
fn strings_escape_exactly_what_json_stringify_escapes() {
    let value = json!("\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1}\u{1f}\u{7f}\u{2028}é😀");
    assert_eq!(
        to_canonical_json(&value).unwrap(),
        "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u{7f}\u{2028}é😀\""
    );
}

#[test]
fn nested_values_are_canonical_all_the_way_down() {
    let value = json!({"z": [{"b": 1, "a": [true, {"y": null, "x": 0.5}]}], "a": {}, "m": []});
    assert_eq!(
        to_canonical_json(&value).unwrap(),
        r#"{"a":{},"m":[],"z":[{"a":[true,{"x":0.5,"y":null}],"b":1}]}"#
    );
}

#[test]
fn serialize_canonical_json_accepts_any_serialize() {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        seq: u64,
        actor: &'a str,
        ratio: f64,
    }
    assert_eq!(
        serialize_canonical_json(&Record {
            seq: 7,
            actor: "ana",
            ratio: 0.25
        })
        .unwrap(),
        r#"{"actor":"ana","ratio":0.25,"seq":7}"#
    );
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1);
    assert!(matches!(
        serialize_canonical_json(&bad),
        Err(CanonicalJsonError::Serialize { .. })
    ));
}

#[test]
fn whole_numbers_beyond_the_safe_range_are_refused_however_written() {
    use airisk_core::ledger::check_safe_integers;
    // Held as integers, or as doubles (`number` parses to f64): the rule is on the value.
    assert!(check_safe_integers(&json!(9_007_199_254_740_993_u64)).is_err());
    // Negative integers held as i64 (serde_json keeps non-negative ones as u64): both edges.
    for ok in [-1_i64, -9_007_199_254_740_991] {
        assert!(check_safe_integers(&json!(ok)).is_ok(), "{ok}");
    }
    for bad in [-9_007_199_254_740_992_i64, i64::MIN] {
        assert!(
            matches!(
                check_safe_integers(&json!([bad])),
                Err(CanonicalJsonError::UnsafeInteger { value }) if value == i128::from(bad)
            ),
            "{bad}"
        );
    }
    for ok in [
        "9007199254740991",
        "-9007199254740991",
        "1.5",
        "1e-7",
        "1.25e-3",
    ] {
        assert!(check_safe_integers(&number(ok)).is_ok(), "{ok}");
    }
    for bad in [
        "9007199254740993",
        "9.007199254740993e15",
        "1.152921504606847e18",
        "1e300",
        "-1e21",
    ] {
        assert!(
            matches!(
                check_safe_integers(&json!({"a": [{"b": number(bad)}]})),
                Err(CanonicalJsonError::UnsafeInteger { .. })
            ),
            "{bad}"
        );
    }
}

proptest::proptest! {
    /// Any string, escapes and multi-byte characters mixed at random, is written as serde_json
    /// writes a string, which escapes exactly what `JSON.stringify` does (`"`, `\`, and the
    /// controls below U+0020, `\b \f \n \r \t` by name and the rest as lower-case `\u00xx`).
    #[test]
    fn any_string_is_written_as_json_stringify_writes_it(
        text in "(\\PC|[\"\\\\\\x00-\\x1f\\x7f\u{2028}é😀]){0,64}"
    ) {
        let expected = serde_json::to_string(&text).unwrap();
        proptest::prop_assert_eq!(to_canonical_json(&Value::String(text.clone())).unwrap(), expected.clone());
        // And as an object key.
        let object = Value::Object([(text, Value::Null)].into_iter().collect());
        proptest::prop_assert_eq!(to_canonical_json(&object).unwrap(), format!("{{{expected}:null}}"));
    }
}
