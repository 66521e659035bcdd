//! The `matcher` binary as a script sees it: output, summary and exit codes.

use std::process::Command;

fn matcher() -> Command {
    Command::new(env!("CARGO_BIN_EXE_matcher"))
}

const DEV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dev");

#[test]
fn given_the_dev_set_when_matched_then_json_lines_and_a_summary_and_exit_0() {
    let out = matcher()
        .args(["match", "--linkedin", &format!("{DEV}/linkedin.jsonl")])
        .args(["--crm", &format!("{DEV}/crm.jsonl")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    for field in ["linkedin_id", "crm_id", "method", "score", "reason"] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("2000 lines read, 0 skipped"), "{stderr}");
    assert!(stderr.contains("pairs for"), "{stderr}");
}

#[test]
fn given_a_missing_flag_then_usage_error_exit_2() {
    let out = matcher()
        .args(["match", "--linkedin", "x.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--crm"));
}

#[test]
fn given_a_missing_file_then_a_clear_error_exit_1() {
    let out = matcher()
        .args([
            "match",
            "--linkedin",
            "/nonexistent/l.jsonl",
            "--crm",
            "/nonexistent/c.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/l.jsonl"));
}
