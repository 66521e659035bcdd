//! `rp consumers`: where every durable consumer is, how far behind, and what it gave up on.

use crate::Failure;
use crate::output::Output;
use futures::StreamExt;
use rp_platform::config::PlatformConfig;
use std::collections::HashMap;

pub async fn show(config: &PlatformConfig, out: &Output, list_dead: bool) -> Result<(), Failure> {
    let pool = rp_platform::db::connect(&config.database_url, 2)
        .await
        .map_err(Failure::infra)?;
    let nats = rp_platform::bus::connect(&config.nats_url, "rp")
        .await
        .map_err(Failure::infra)?;
    let js = async_nats::jetstream::new(nats);
    let stream = js
        .get_stream(&config.bus.stream)
        .await
        .map_err(|e| Failure::not_found(format!("stream {}: {e}", config.bus.stream)))?;
    let head = rp_platform::eventlog::EventStore::new(pool.clone())
        .head_position()
        .await
        .map_err(Failure::infra)?;
    let handled: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        // The highest handled position, counting marks pruned past their retention (floors).
        "SELECT consumer, MAX(position) FROM ( \
             SELECT consumer, position FROM processed_events \
             UNION ALL SELECT consumer, position FROM processed_floors) h GROUP BY consumer",
    )
    .fetch_all(&pool)
    .await
    .map_err(Failure::infra)?
    .into_iter()
    .collect();
    let dead: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT consumer, count(*) FROM dead_letters GROUP BY consumer",
    )
    .fetch_all(&pool)
    .await
    .map_err(Failure::infra)?
    .into_iter()
    .collect();

    let mut rows = Vec::new();
    let mut infos = stream.consumers();
    while let Some(info) = infos.next().await {
        let info = info.map_err(Failure::infra)?;
        let base = info
            .name
            .rsplit_once("-p")
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
            .map_or(info.name.as_str(), |(b, _)| b)
            .to_string();
        rows.push(vec![
            info.name.clone(),
            info.config.filter_subject.clone(),
            info.num_pending.to_string(),
            info.num_ack_pending.to_string(),
            info.num_redelivered.to_string(),
            info.ack_floor.stream_sequence.to_string(),
            handled.get(&base).map_or("-".into(), |p| p.to_string()),
            head.to_string(),
            dead.get(&info.name).copied().unwrap_or(0).to_string(),
        ]);
    }
    rows.sort();
    out.table(
        &[
            "CONSUMER",
            "FILTER",
            "PENDING",
            "IN_FLIGHT",
            "REDELIVERED",
            "ACK_FLOOR",
            "HANDLED_POSITION",
            "LOG_HEAD",
            "DEAD",
        ],
        &rows,
    );
    if list_dead {
        let letters = rp_platform::consumer::dead_letters(&pool, None)
            .await
            .map_err(Failure::infra)?;
        if !out.json() {
            println!();
        }
        let rows: Vec<Vec<String>> = letters
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.consumer.clone(),
                    d.event_type.clone(),
                    d.event_id.map_or("-".into(), |id| id.to_string()),
                    d.deliveries.to_string(),
                    d.dead_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    d.error.clone(),
                ]
            })
            .collect();
        out.table(
            &[
                "DEAD_LETTER",
                "CONSUMER",
                "TYPE",
                "EVENT_ID",
                "DELIVERIES",
                "AT",
                "ERROR",
            ],
            &rows,
        );
    }
    Ok(())
}
