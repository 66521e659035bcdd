//! Batch command line: match a LinkedIn export against a CRM export.
//!
//! ```text
//! matcher match --linkedin L.jsonl --crm C.jsonl [--review R.jsonl] [--decisions D.jsonl] [--strict]
//! ```
//!
//! Prints one JSON object per pair on stdout:
//! `{"linkedin_id","crm_id","method","score","reason"}`, LinkedIn companies in input order, pairs
//! by CRM id. `--review` writes the companies that need a person, with their candidates.
//! `--decisions` reads manual decisions (`{"linkedin_id","crm_id","action":"confirm|reject|link"}`)
//! that win over the algorithm.
//!
//! Bad input lines are reported on stderr as `FILE:LINE: problem` and skipped; at the end a
//! summary says how many lines were read, skipped and matched.
//!
//! Exit codes: `0` done (skipped lines, if any, were reported); `1` could not read an input or
//! write an output; `2` wrong usage (missing or unknown flags); `3` done, but `--strict` was given
//! and some input lines were skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Candidate, CrmAccount, CrmId, Decision, LinkedInCompany, LinkedInId, LinkedInResult,
    MatchConfig, MatchIndex, Method, Score,
};

/// Exit code: wrong usage (what clap uses too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: could not read an input or write an output.
pub const EXIT_IO: u8 = 1;
/// Exit code: `--strict` and some input lines were skipped.
pub const EXIT_SKIPPED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "matcher",
    version,
    about = "Matches LinkedIn companies with CRM accounts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Match a LinkedIn export against a CRM export (JSON Lines) and print the pairs.
    Match(MatchArgs),
    /// Run the service (the default when no command is given).
    Serve,
}

#[derive(Args, Debug, Clone)]
pub struct MatchArgs {
    /// LinkedIn companies, JSON Lines: {"id","name","vanity_name","website","country"}.
    #[arg(long, value_name = "FILE")]
    pub linkedin: PathBuf,
    /// CRM accounts, JSON Lines: {"id","name","domain","website","country"}.
    #[arg(long, value_name = "FILE")]
    pub crm: PathBuf,
    /// Write the companies that need a person's review, with their candidates, to this file.
    #[arg(long, value_name = "FILE")]
    pub review: Option<PathBuf>,
    /// Manual decisions, JSON Lines: {"linkedin_id","crm_id","action":"confirm|reject|link"}.
    #[arg(long, value_name = "FILE")]
    pub decisions: Option<PathBuf>,
    /// Exit with code 3 when any input line was skipped.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Deserialize)]
struct RawLinkedIn {
    id: String,
    name: Option<String>,
    #[serde(default)]
    vanity_name: Option<String>,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

#[derive(Deserialize)]
struct RawCrm {
    id: String,
    name: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// Counts for one input file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    pub read: usize,
    pub skipped: usize,
}

/// Reads a JSON Lines file; `parse` turns one line into a record or says what is wrong with it.
/// Bad lines are reported to `err` as `FILE:LINE: problem` and skipped; blank lines are ignored.
/// Only failing to open or read the file is an error.
pub fn read_jsonl<T>(
    path: &Path,
    err: &mut dyn Write,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> io::Result<(Vec<T>, ReadStats)> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut stats = ReadStats::default();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let problem = match std::str::from_utf8(&buf) {
            Err(_) => Some("not valid UTF-8".to_string()),
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match parse(text) {
                    Ok(rec) => {
                        out.push(rec);
                        None
                    }
                    Err(e) => Some(e),
                }
            }
        };
        stats.read += 1;
        if let Some(p) = problem {
            stats.skipped += 1;
            // A failing stderr must not stop the run.
            let _ = writeln!(err, "{}:{line_no}: {p}; line skipped", path.display());
        }
    }
    Ok((out, stats))
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn parse_linkedin(line: &str) -> Result<LinkedInCompany, String> {
    let raw: RawLinkedIn = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let id = LinkedInId::parse(&raw.id).map_err(|e| e.to_string())?;
    Ok(LinkedInCompany {
        id,
        name: raw.name.unwrap_or_default(),
        vanity_name: nonempty(raw.vanity_name),
        website: nonempty(raw.website),
        country: nonempty(raw.country),
    })
}

fn parse_crm(line: &str) -> Result<CrmAccount, String> {
    let raw: RawCrm = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let id = CrmId::parse(&raw.id).map_err(|e| e.to_string())?;
    Ok(CrmAccount {
        id,
        name: raw.name.unwrap_or_default(),
        domain: nonempty(raw.domain),
        website: nonempty(raw.website),
        country: nonempty(raw.country),
    })
}

fn parse_decision(line: &str) -> Result<Decision, String> {
    serde_json::from_str(line).map_err(|e| format!("invalid decision: {e}"))
}

/// Keeps the first record of each id; reports later ones.
fn drop_duplicate_ids<T, K: std::hash::Hash + Eq + std::fmt::Display>(
    records: Vec<T>,
    id: impl Fn(&T) -> K,
    path: &Path,
    stats: &mut ReadStats,
    err: &mut dyn Write,
) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let k = id(&r);
        if seen.contains(&k) {
            stats.skipped += 1;
            let _ = writeln!(
                err,
                "{}: duplicate id {k}; later line skipped",
                path.display()
            );
        } else {
            seen.insert(k);
            out.push(r);
        }
    }
    out
}

#[derive(Serialize)]
struct ReviewLine<'a> {
    linkedin_id: &'a LinkedInId,
    linkedin_name: &'a str,
    reason: &'a str,
    candidates: &'a [Candidate],
}

#[derive(Serialize)]
struct MatchLine<'a> {
    linkedin_id: &'a LinkedInId,
    crm_id: &'a CrmId,
    method: Method,
    score: Score,
    reason: &'a str,
}

fn write_result(
    result: &LinkedInResult,
    names: &HashMap<LinkedInId, String>,
    out: &mut dyn Write,
    review_out: Option<&mut BufWriter<File>>,
) -> io::Result<()> {
    for m in &result.matches {
        let line = MatchLine {
            linkedin_id: &m.linkedin_id,
            crm_id: &m.crm_id,
            method: m.method,
            score: m.score,
            reason: &m.reason,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    if let (Some(r), Some(w)) = (&result.review, review_out) {
        let line = ReviewLine {
            linkedin_id: &result.linkedin_id,
            linkedin_name: names.get(&result.linkedin_id).map_or("", String::as_str),
            reason: &r.reason,
            candidates: &r.candidates,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Runs `matcher match`; returns the exit code. Diagnostics go to stderr.
pub fn run_match(args: &MatchArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut err = io::stderr();
    let code = match run_match_to(args, &mut out, &mut err) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "matcher: {e}");
            EXIT_IO
        }
    };
    ExitCode::from(code)
}

/// `matcher match` with explicit output streams (for tests).
pub fn run_match_to(args: &MatchArgs, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<u8> {
    let (linkedin, mut li_stats) = read_jsonl(&args.linkedin, err, parse_linkedin)?;
    let linkedin = drop_duplicate_ids(
        linkedin,
        |c| c.id.clone(),
        &args.linkedin,
        &mut li_stats,
        err,
    );
    let (crm, mut crm_stats) = read_jsonl(&args.crm, err, parse_crm)?;
    let crm = drop_duplicate_ids(crm, |a| a.id.clone(), &args.crm, &mut crm_stats, err);
    let (decisions, dec_stats) = match &args.decisions {
        Some(p) => read_jsonl(p, err, parse_decision)?,
        None => (Vec::new(), ReadStats::default()),
    };
    let names: HashMap<LinkedInId, String> = linkedin
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();

    let cfg = MatchConfig {
        track_dependencies: false,
        ..MatchConfig::default()
    };
    let index = MatchIndex::build(cfg, crm, linkedin, decisions);

    let mut review_out = match &args.review {
        Some(p) => Some(BufWriter::new(File::create(p).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", p.display()))
        })?)),
        None => None,
    };
    let (mut pairs, mut companies, mut reviews) = (0usize, 0usize, 0usize);
    let mut failed: Option<io::Error> = None;
    index.for_each_result_chunk(1 << 16, |chunk| {
        if failed.is_some() {
            return;
        }
        for result in chunk {
            if !result.matches.is_empty() {
                companies += 1;
            }
            if result.review.is_some() {
                reviews += 1;
            }
            pairs += result.matches.len();
            if let Err(e) = write_result(result, &names, out, review_out.as_mut()) {
                failed = Some(e);
                return;
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush()?;
    if let Some(mut w) = review_out {
        w.flush()?;
    }
    let mut summary = format!(
        "matcher: {}: {} lines read, {} skipped; {}: {} lines read, {} skipped; ",
        args.linkedin.display(),
        li_stats.read,
        li_stats.skipped,
        args.crm.display(),
        crm_stats.read,
        crm_stats.skipped,
    );
    if let Some(p) = &args.decisions {
        summary.push_str(&format!(
            "{}: {} lines read, {} skipped; ",
            p.display(),
            dec_stats.read,
            dec_stats.skipped
        ));
    }
    summary.push_str(&format!(
        "{pairs} pairs for {companies} LinkedIn companies; {reviews} need review"
    ));
    let _ = writeln!(err, "{summary}");
    let skipped = li_stats.skipped + crm_stats.skipped + dec_stats.skipped;
    Ok(if args.strict && skipped > 0 {
        EXIT_SKIPPED
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("matcher-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn given_bad_lines_when_reading_then_they_are_reported_with_file_and_line_and_skipped() {
        let d = tmpdir("bad");
        let p = write(
            &d,
            "li.jsonl",
            "{\"id\":\"li-1\",\"name\":\"Acme\"}\nnot json\n\n{\"name\":\"no id\"}\n{\"id\":\" \",\"name\":\"x\"}\n",
        );
        let mut err = Vec::new();
        let (recs, stats) = read_jsonl(&p, &mut err, parse_linkedin).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            stats,
            ReadStats {
                read: 4,
                skipped: 3
            }
        );
        assert!(err.contains("li.jsonl:2: invalid JSON"), "{err}");
        assert!(err.contains("li.jsonl:4: invalid JSON"), "{err}");
        assert!(
            err.contains("li.jsonl:5: LinkedIn company id is empty"),
            "{err}"
        );
    }

    #[test]
    fn given_a_missing_file_then_a_clear_io_error() {
        let mut err = Vec::new();
        let e = read_jsonl(Path::new("/nonexistent/x.jsonl"), &mut err, parse_crm).unwrap_err();
        assert!(e.to_string().contains("cannot open /nonexistent/x.jsonl"));
    }

    #[test]
    fn given_two_files_when_matching_then_pairs_and_summary() {
        let d = tmpdir("run");
        let li = write(
            &d,
            "li.jsonl",
            "{\"id\":\"li-1\",\"name\":\"Acme Ltd\",\"website\":\"https://www.acme.co.uk/\"}\n",
        );
        let crm = write(
            &d,
            "crm.jsonl",
            "{\"id\":\"crm-1\",\"name\":\"ACME\",\"domain\":\"ACME.CO.UK\"}\n{\"id\":\"crm-1\",\"name\":\"dup\"}\n",
        );
        let args = MatchArgs {
            linkedin: li,
            crm,
            review: None,
            decisions: None,
            strict: true,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_match_to(&args, &mut out, &mut err).unwrap();
        let out = String::from_utf8(out).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, EXIT_SKIPPED, "{err}");
        assert!(
            out.contains("\"linkedin_id\":\"li-1\",\"crm_id\":\"crm-1\",\"method\":\"domain\""),
            "{out}"
        );
        assert!(err.contains("1 pairs for 1 LinkedIn companies"), "{err}");
        assert!(err.contains("duplicate id crm-1"), "{err}");
    }
}
