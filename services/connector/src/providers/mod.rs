//! HTTP clients for the ad and CRM providers: LinkedIn (ads, organizations), HubSpot and
//! Salesforce (companies, contacts, deals), and their OAuth 2.0 servers.
//!
//! Every client takes a configurable base URL (the sandbox or the real provider), returns one
//! [`Page`](crate::domain::provider::Page) at a time so memory stays bounded, and reports
//! failures as a [`ProviderError`](crate::domain::provider::ProviderError) that says what the
//! caller should do (the table is in [`crate::domain::provider`]).

pub mod hubspot;
pub mod linkedin;
pub mod oauth;
pub mod salesforce;

mod http;

use std::sync::Once;
use std::time::Duration;

pub use http::RetryPolicy;

/// `CONNECTOR_MAX_RESPONSE_BYTES`' default: 16 MiB, a few MiB above the largest legitimate
/// answer (a LinkedIn analytics answer at its 15,000-row cap is about 6 MB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// `CONNECTOR_MAX_PAGES`' default: pages of one object in one run (ten million HubSpot records
/// at 100 a page), far beyond any real account, short of for ever.
pub const DEFAULT_MAX_PAGES: u64 = 100_000;

static CRYPTO: Once = Once::new();

/// Install rustls' ring crypto provider as the process default (reqwest is built with
/// `rustls-no-provider`). Idempotent; call once at startup, before building HTTP clients.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        // Err only means another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The reqwest client provider clients share: ring TLS, no redirects (OAuth redirects are for
/// browsers), a per-request timeout.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "revenue-proven-connector/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}
