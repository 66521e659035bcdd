//! `rp tokens rewrap`: re-seals every stored provider token under the active key, so an old key
//! can leave `CONNECTOR_TOKEN_KEYS` without waiting for each token's next refresh (docs/security.md,
//! issue 15.9). Uses the connector's own key ring and vault code; prints counts, never a token.

use crate::Failure;
use crate::output::Output;
use clap::Subcommand;
use rp_platform::config::PlatformConfig;

#[derive(Subcommand)]
pub enum TokensCmd {
    /// Re-seal every token not sealed under CONNECTOR_TOKEN_KEY_ID with it (the ring is read
    /// from CONNECTOR_TOKEN_KEYS, as the connector reads it). Safe while connectors run, and to
    /// run again. Prints how many were re-sealed per old key id.
    Rewrap {
        /// Rows per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
    },
}

pub async fn run(cmd: TokensCmd, config: &PlatformConfig, out: &Output) -> Result<(), Failure> {
    match cmd {
        TokensCmd::Rewrap { batch } => {
            let keys = connector::config::key_ring_from_env().map_err(Failure::usage)?;
            let pool = rp_platform::db::connect(&config.database_url, 2)
                .await
                .map_err(Failure::infra)?;
            let done = connector::vault::rewrap_all(&pool, &keys, batch)
                .await
                .map_err(Failure::infra)?;
            let active = keys.active_key_id();
            let mut rows: Vec<Vec<String>> = done
                .resealed
                .iter()
                .map(|(k, n)| vec![k.clone(), active.to_string(), n.to_string(), "0".into()])
                .collect();
            for (k, n) in &done.failed {
                match rows.iter_mut().find(|r| &r[0] == k) {
                    Some(r) => r[3] = n.to_string(),
                    None => rows.push(vec![
                        k.clone(),
                        active.to_string(),
                        "0".into(),
                        n.to_string(),
                    ]),
                }
            }
            if rows.is_empty() && !out.json() {
                println!("every token is already sealed under {active}");
            } else {
                out.table(&["FROM_KEY_ID", "TO_KEY_ID", "RESEALED", "FAILED"], &rows);
            }
            let failed: u64 = done.failed.values().sum();
            if failed > 0 {
                return Err(Failure::infra(format!(
                    "{failed} token rows could not be opened with CONNECTOR_TOKEN_KEYS (is their key \
                     missing from the ring?); they were left as they were"
                )));
            }
            Ok(())
        }
    }
}
