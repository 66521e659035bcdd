//! OAuth 2.0 authorization-code flow with PKCE (S256) for the three providers, on the `oauth2`
//! crate with a small adapter that runs its requests over our reqwest client.
//!
//! Provider quirks handled here: HubSpot's non-standard error bodies
//! (`{"status":"BAD_REFRESH_TOKEN","message":..}`), LinkedIn's token response without
//! `token_type`, Salesforce's without `expires_in` (and with `instance_url`), refresh responses
//! with or without a (rotated) refresh token.
//!
//! | file | what |
//! |---|---|
//! | `config` | [`OAuthConfig`]: each provider's endpoints and scopes |
//! | `wire` | the token endpoint's success and error bodies |
//! | `adapter` | `oauth2` over our reqwest client |
//! | `client` | [`OAuthClient`]: authorize URL, callback, code exchange, refresh |

mod adapter;
mod client;
mod config;
mod wire;

pub use adapter::{AdapterError, ReqwestAdapter};
pub use client::{AuthorizationStart, Callback, OAuthClient, TokenSet};
pub use config::OAuthConfig;
pub use wire::{ProviderTokenError, ProviderTokenResponse};
