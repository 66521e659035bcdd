//! The provider's clock, for signposts. Real providers run on real time, so this machine's
//! clock is right for them; the sandbox runs its own clock (pinned to its anchor date in tests),
//! which `CONNECTOR_PROVIDER_CLOCK_URL` points at (`<sandbox>/admin/clock`).

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub enum ProviderClock {
    System,
    /// A URL answering `{"now_ms": <epoch ms>}`.
    Http {
        url: String,
        client: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct ClockJ {
    now_ms: i64,
}

impl ProviderClock {
    pub fn from_config(url: Option<&str>, client: reqwest::Client) -> Self {
        match url {
            Some(u) => ProviderClock::Http {
                url: u.to_string(),
                client,
            },
            None => ProviderClock::System,
        }
    }

    pub async fn now(&self) -> Result<DateTime<Utc>, String> {
        match self {
            ProviderClock::System => Ok(Utc::now()),
            ProviderClock::Http { url, client } => {
                let resp = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("reading the provider clock: {}", e.without_url()))?;
                if !resp.status().is_success() {
                    return Err(format!(
                        "reading the provider clock: HTTP {}",
                        resp.status()
                    ));
                }
                let j: ClockJ = resp
                    .json()
                    .await
                    .map_err(|e| format!("reading the provider clock: {}", e.without_url()))?;
                DateTime::from_timestamp_millis(j.now_ms)
                    .ok_or_else(|| format!("the provider clock said {} ms", j.now_ms))
            }
        }
    }
}
