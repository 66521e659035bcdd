//! What a real provider never forgets when our system restarts: its OAuth state (grants, refresh
//! and access tokens, pending authorization codes, revocations) and its clock. With a state
//! directory (`SandboxConfig::state_dir`, `SANDBOX_STATE_DIR`) the sandbox loads them at start
//! and rewrites `state.json` whenever they change, atomically (a temporary file, then a rename),
//! so a sandbox stopped at any moment starts again from its last complete state.
//!
//! The OAuth state is stored through serde, whatever its fields are: one JSON value per
//! provider. Client registrations are configuration (`SandboxConfig::clients`, the same every
//! start), so there is nothing to keep for them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Provider;
use crate::oauth::OAuthState;

const FILE: &str = "state.json";
const TEMP: &str = "state.json.tmp";
/// Where a file this version cannot read is moved, so that nothing is lost silently.
const UNREADABLE: &str = "state.json.unreadable";
const VERSION: u32 = 1;

/// The clock as it was saved: its reading and the real time of that reading, so that it goes on
/// from there as real time passes while the sandbox is down (as a provider's clock does).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct SavedClock {
    now_ms: i64,
    saved_at_ms: i64,
}

/// `state.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// The pinned anchor (`None`: the real date) the state belongs to.
    anchor: Option<NaiveDate>,
    clock: SavedClock,
    oauth: BTreeMap<Provider, Value>,
}

/// The state found in the directory at start.
#[derive(Debug, Default)]
pub struct Restored {
    /// Where the clock is now, when the state had one.
    pub clock_ms: Option<i64>,
    /// Per provider (index [`Provider::index`]).
    pub oauth: [OAuthState; 3],
}

/// The state directory of a running sandbox: the last state written, to rewrite it whole when one
/// part changes.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    saved: Mutex<Saved>,
}

fn real_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl StateDir {
    /// Opens (creating it if needed) the directory and reads what a previous run left there. A
    /// file that cannot be read is moved aside (`state.json.unreadable`) and the sandbox starts
    /// afresh; one made with another pinned anchor is dropped.
    pub fn open(dir: &Path, anchor: Option<NaiveDate>) -> anyhow::Result<(StateDir, Restored)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the sandbox state directory {}", dir.display()))?;
        let path = dir.join(FILE);
        let mut restored = Restored::default();
        let mut saved = Saved {
            version: VERSION,
            anchor,
            clock: SavedClock {
                now_ms: 0,
                saved_at_ms: 0,
            },
            oauth: BTreeMap::new(),
        };
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            Ok(bytes) => match parse(&bytes) {
                Ok((found, _)) if found.anchor != anchor => {
                    tracing::warn!(
                        path = %path.display(),
                        "the saved sandbox state belongs to another anchor date: starting afresh"
                    );
                }
                Ok((found, oauth)) => {
                    let elapsed = (real_now_ms() - found.clock.saved_at_ms).max(0);
                    restored.clock_ms = Some(found.clock.now_ms.saturating_add(elapsed));
                    restored.oauth = oauth;
                    tracing::info!(path = %path.display(), "sandbox state restored");
                    saved = found;
                }
                Err(e) => {
                    let aside = dir.join(UNREADABLE);
                    std::fs::rename(&path, &aside).with_context(|| {
                        format!("moving the unreadable {} aside", path.display())
                    })?;
                    tracing::warn!(
                        error = %e,
                        moved_to = %aside.display(),
                        "the saved sandbox state cannot be read: starting afresh"
                    );
                }
            },
        }
        Ok((
            StateDir {
                dir: dir.to_path_buf(),
                saved: Mutex::new(saved),
            },
            restored,
        ))
    }

    fn saved(&self) -> MutexGuard<'_, Saved> {
        self.saved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One provider's OAuth state changed: write it (with the clock), unless it is as saved.
    pub fn oauth_changed(&self, p: Provider, state: &OAuthState, clock_ms: i64) {
        let value = match serde_json::to_value(state) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(provider = %p, error = %e, "cannot serialise the OAuth state");
                return;
            }
        };
        let mut saved = self.saved();
        if saved.oauth.get(&p) == Some(&value) {
            return;
        }
        saved.oauth.insert(p, value);
        self.write(&mut saved, clock_ms);
    }

    /// The clock was moved: write where it is now.
    pub fn clock_changed(&self, clock_ms: i64) {
        let mut saved = self.saved();
        self.write(&mut saved, clock_ms);
    }

    /// Writes the whole state: a temporary file, flushed, then renamed over `state.json`. Called
    /// with the lock held, so writes never interleave. A failure is logged: the sandbox goes on
    /// serving, only a restart would forget.
    fn write(&self, saved: &mut Saved, clock_ms: i64) {
        saved.clock = SavedClock {
            now_ms: clock_ms,
            saved_at_ms: real_now_ms(),
        };
        let written = serde_json::to_vec(&*saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let temp = self.dir.join(TEMP);
                let mut f = std::fs::File::create(&temp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&temp, self.dir.join(FILE))
            });
        if let Err(e) = written {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot save the sandbox state");
        }
    }
}

/// The file's state and each provider's OAuth state, or why it cannot be read.
fn parse(bytes: &[u8]) -> anyhow::Result<(Saved, [OAuthState; 3])> {
    let saved: Saved = serde_json::from_slice(bytes).context("not a sandbox state file")?;
    anyhow::ensure!(
        saved.version == VERSION,
        "state file version {} (this sandbox reads {VERSION})",
        saved.version
    );
    let mut oauth: [OAuthState; 3] = Default::default();
    for (p, v) in &saved.oauth {
        oauth[p.index()] =
            serde_json::from_value(v.clone()).with_context(|| format!("the {p} OAuth state"))?;
    }
    Ok((saved, oauth))
}
