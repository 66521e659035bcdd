//! How the Salesforce client is set up: the org's instance and the API version.

use crate::providers::RetryPolicy;

#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// The org's API base: the `instance_url` of the token response.
    pub instance_url: String,
    /// e.g. `v60.0`.
    pub api_version: String,
    pub retry: RetryPolicy,
    /// The most bytes one answer may have (`CONNECTOR_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: usize,
}

impl SalesforceConfig {
    pub fn new(instance_url: &str) -> Self {
        SalesforceConfig {
            instance_url: instance_url.to_string(),
            api_version: "v60.0".into(),
            retry: RetryPolicy::default(),
            max_response_bytes: crate::providers::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}
