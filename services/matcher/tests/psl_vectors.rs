//! The Public Suffix List's official test vectors (tests/data/test_psl.txt, public domain).
//!
//! `checkPublicSuffix(input, expected)`: `expected` is the registrable domain of `input`, and
//! `null` means there is none (the input is itself a public suffix, has a leading dot, or is
//! null). Lines the file comments out (`//checkPublicSuffix(...)`, the `.local` block: "listed,
//! but non-Internet" — not in the list we ship) are skipped, as the file intends.

use matcher::domain::registrable_domain;

const VECTORS: &str = include_str!("data/test_psl.txt");

fn parse_arg(s: &str) -> Option<String> {
    let s = s.trim();
    if s == "null" {
        None
    } else {
        Some(s.trim_matches('\'').to_string())
    }
}

#[test]
fn public_suffix_list_test_vectors_pass() {
    let mut checked = 0;
    let mut commented_out = 0;
    let mut failures = Vec::new();
    for line in VECTORS.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            if line.contains("checkPublicSuffix(") {
                commented_out += 1;
            }
            continue;
        }
        let Some(args) = line
            .strip_prefix("checkPublicSuffix(")
            .and_then(|r| r.strip_suffix(");"))
        else {
            continue;
        };
        let (input, expected) = args.split_once(',').expect("two arguments");
        let (input, expected) = (parse_arg(input), parse_arg(expected));
        let got = input
            .as_deref()
            .and_then(registrable_domain)
            .map(|s| s.as_str().to_string());
        // Expected values are written in Unicode for IDN inputs; our sites are punycode.
        let want = expected.map(|e| idna::domain_to_ascii(&e).expect("valid expected domain"));
        if got != want {
            failures.push(format!("{line}: got {got:?}, want {want:?}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 78, "number of active vectors");
    assert_eq!(commented_out, 4, "number of commented-out vectors");
}
