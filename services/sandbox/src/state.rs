//! Shared server state: the world, OAuth grants, per-provider controls, request log.

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{Provider, RateLimit, SandboxConfig, SearchLimit};
use crate::data::World;
use crate::oauth::OAuthState;
use crate::persist::{Restored, StateDir};
use crate::util::Clock;

pub type AppState = Arc<Inner>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageMode {
    /// Every request gets a 503 in the provider's shape.
    #[serde(rename = "503")]
    Unavailable,
    /// Requests hang until the client gives up.
    Timeout,
}

/// Runtime switches for one provider, set over the admin API.
#[derive(Debug)]
pub struct Controls {
    pub outage: Option<OutageMode>,
    pub latency_ms: u64,
    pub malformed_next: u32,
    pub deny_next_authorize: bool,
    pub rotate_refresh: bool,
    /// Rolling-window limit (HubSpot shape); `None` = off.
    pub rate: Option<RateLimit>,
    /// Daily request limit (Salesforce shape); `None` = unlimited.
    pub daily_limit: Option<u64>,
    pub window: VecDeque<Instant>,
    pub daily_used: u64,
    pub peak_window: u32,
    /// HubSpot's search limit (applies while `rate` is on) and its own window: when each
    /// counted search came, on the sandbox clock (ms), so advancing the clock rolls it.
    pub search_limit: SearchLimit,
    pub search_window: VecDeque<i64>,
    pub search_peak_window: u32,
    pub rejected: u64,
    pub requests: u64,
    /// HubSpot: records edited in the CRM while a search is being paged (one shot).
    pub edit_during_search: Option<EditDuringSearch>,
    /// Salesforce: how far the deletion index lags the clock (`latestDateCovered`), ms.
    pub deleted_index_lag_ms: i64,
    /// Salesforce: an Account edited again within its second once a query read it (one shot).
    pub sf_edit_after_query: Option<crate::salesforce::EditAfterQuery>,
    /// LinkedIn: organization ids the batch lookup answers with a per-id error (id -> status).
    pub organization_errors: std::collections::BTreeMap<u64, u16>,
    /// LinkedIn: the member sees no ad account (`adAccounts` answers an empty list).
    pub ad_accounts_hidden: bool,
    /// A provider gone hostile (`PUT /admin/providers/{p}/hostile`); `None` = behaves.
    pub hostile: Option<Hostile>,
}

/// How a hostile provider answers (issue 15.10): bodies too big to hold, paging that never ends,
/// a Salesforce `instance_url` pointing elsewhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hostile {
    /// What successful API answers become; `None` = unchanged.
    #[serde(default)]
    pub mode: Option<HostileMode>,
    /// `huge_body`: bytes per answer (default 64 MiB), streamed, never held whole.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Salesforce: the `instance_url` token answers give instead of the sandbox's.
    #[serde(default)]
    pub instance_url: Option<String>,
    /// `throttle`: how many requests are still answered 429 (default 3).
    #[serde(default)]
    pub count: Option<u32>,
    /// `throttle`: the `Retry-After` they carry, in seconds (default ten years).
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// `huge_body`: bytes actually written to clients so far (a client that stops reading at
    /// its cap stops the stream).
    #[serde(skip)]
    pub bytes_served: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileMode {
    /// Every successful API answer is an endless-looking JSON document of `bytes` bytes.
    HugeBody,
    /// HubSpot list pages: every page names the same `after` cursor, and that cursor serves the
    /// first page again.
    RepeatCursor,
    /// HubSpot list pages: every page names a new `after` cursor, and every cursor serves the
    /// first page again: paging never ends.
    EndlessPages,
    /// HubSpot: the next `count` API requests (default 3) are answered 429 with a `Retry-After`
    /// of `retry_after` seconds (default ten years).
    Throttle,
}

/// A fault of the real world: while a search of `object` is paged, once `after_page` pages of it
/// have been served, `count` records from the first of that last page on (already read by the
/// client, in modified order) are edited in one millisecond, so they move to the end of the
/// modified order and every later record shifts back.
#[derive(Debug, Clone, Deserialize)]
pub struct EditDuringSearch {
    pub object: String,
    pub after_page: u32,
    pub count: u32,
    #[serde(skip)]
    pub served: u32,
}

impl Controls {
    fn new(p: Provider, cfg: &SandboxConfig) -> Self {
        Controls {
            outage: None,
            latency_ms: 0,
            malformed_next: 0,
            deny_next_authorize: false,
            rotate_refresh: cfg.rotate_refresh_tokens,
            rate: if p == Provider::Hubspot {
                cfg.hubspot_rate_limit
            } else {
                None
            },
            daily_limit: if p == Provider::Salesforce {
                cfg.salesforce_daily_limit
            } else {
                None
            },
            window: VecDeque::new(),
            daily_used: 0,
            peak_window: 0,
            search_limit: cfg.hubspot_search_limit,
            search_window: VecDeque::new(),
            search_peak_window: 0,
            rejected: 0,
            requests: 0,
            edit_during_search: None,
            deleted_index_lag_ms: 0,
            sf_edit_after_query: None,
            organization_errors: std::collections::BTreeMap::new(),
            ad_accounts_hidden: false,
            hostile: None,
        }
    }
}

/// One line of the request log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub seq: u64,
    pub provider: Provider,
    pub method: String,
    /// Path without the provider prefix, e.g. `/crm/v3/objects/companies`.
    pub path: String,
    pub query: Option<String>,
    /// Secrets masked; JSON bodies cut to 500 characters.
    pub body: Option<String>,
    pub status: u16,
    /// Sandbox clock, RFC 3339.
    pub time: String,
    pub duration_ms: u64,
}

#[derive(Debug, Default)]
pub struct RequestLog {
    pub entries: VecDeque<LoggedRequest>,
    pub next_seq: u64,
}

/// A Salesforce query cursor: the rows it selected, rendered batch by batch.
#[derive(Debug, Clone)]
pub struct SfCursor {
    pub object: crate::soql::SfObject,
    pub fields: Vec<crate::soql::Field>,
    pub rows: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct Cursors {
    pub map: HashMap<String, Arc<SfCursor>>,
    pub order: VecDeque<String>,
    pub next: u64,
}

pub struct Inner {
    pub config: SandboxConfig,
    pub clock: Clock,
    pub base_url: String,
    pub started: Instant,
    world: RwLock<World>,
    oauth: [Mutex<OAuthState>; 3],
    controls: [Mutex<Controls>; 3],
    log: Mutex<RequestLog>,
    pub cursors: Mutex<Cursors>,
    /// Where the OAuth state and the clock are kept across restarts; `None` = memory only.
    state_dir: Option<StateDir>,
}

/// One provider's OAuth state, locked. Changing it (any `&mut` use) saves it to the state
/// directory when the lock is released, so every handler's change is kept without each handler
/// having to remember to.
pub struct OAuthGuard<'a> {
    state: MutexGuard<'a, OAuthState>,
    changed: bool,
    provider: Provider,
    inner: &'a Inner,
}

impl Deref for OAuthGuard<'_> {
    type Target = OAuthState;
    fn deref(&self) -> &OAuthState {
        &self.state
    }
}

impl DerefMut for OAuthGuard<'_> {
    fn deref_mut(&mut self) -> &mut OAuthState {
        self.changed = true;
        &mut self.state
    }
}

impl Drop for OAuthGuard<'_> {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (self.changed, &self.inner.state_dir) {
            dir.oauth_changed(self.provider, &self.state, self.inner.clock.now_ms());
        }
    }
}

/// A poisoned lock only means a handler panicked mid-update; the data is still usable for a
/// sandbox, so recover instead of cascading the panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// `restored`: the state directory and what it held, when the sandbox has one.
    pub fn new(
        config: SandboxConfig,
        base_url: String,
        world: World,
        restored: Option<(StateDir, Restored)>,
    ) -> Self {
        let (state_dir, restored) = match restored {
            Some((dir, r)) => (Some(dir), r),
            None => (None, Restored::default()),
        };
        let clock = match restored.clock_ms {
            Some(ms) => Clock::starting_at(ms),
            None => Clock::new(config.anchor),
        };
        let controls = Provider::ALL.map(|p| Mutex::new(Controls::new(p, &config)));
        Inner {
            clock,
            base_url,
            started: Instant::now(),
            world: RwLock::new(world),
            oauth: restored.oauth.map(Mutex::new),
            controls,
            log: Mutex::new(RequestLog::default()),
            cursors: Mutex::new(Cursors::default()),
            config,
            state_dir,
        }
    }

    pub fn world(&self) -> RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn world_mut(&self) -> RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|e| e.into_inner())
    }
    pub fn oauth(&self, p: Provider) -> OAuthGuard<'_> {
        OAuthGuard {
            state: lock(&self.oauth[p.index()]),
            changed: false,
            provider: p,
            inner: self,
        }
    }

    /// Moves the sandbox clock forward (and keeps where it is, with a state directory).
    pub fn advance_clock(&self, ms: i64) {
        self.clock.advance(ms);
        if let Some(dir) = &self.state_dir {
            dir.clock_changed(self.clock.now_ms());
        }
    }
    pub fn controls(&self, p: Provider) -> MutexGuard<'_, Controls> {
        lock(&self.controls[p.index()])
    }
    pub fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.log)
    }

    pub fn record(&self, mut entry: LoggedRequest) {
        let cap = self.config.request_log_capacity.max(1);
        let mut log = self.log();
        entry.seq = log.next_seq;
        log.next_seq += 1;
        if log.entries.len() >= cap {
            log.entries.pop_front();
        }
        log.entries.push_back(entry);
    }

    /// Base URL of one provider, e.g. `http://127.0.0.1:7700/hubspot`. Salesforce's is the bare
    /// origin (`http://127.0.0.1:7700`), as a Salesforce org's `instance_url` is; its routes are
    /// also served under `/salesforce`.
    pub fn provider_base(&self, p: Provider) -> String {
        match p {
            Provider::Salesforce => self.base_url.clone(),
            Provider::Linkedin | Provider::Hubspot => format!("{}/{}", self.base_url, p.prefix()),
        }
    }
}
