//! Readable tables for people, JSON lines for machines.

use rp_platform::eventlog::RecordedEvent;

pub struct Output {
    json: bool,
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn event_header(&self) {
        if !self.json {
            println!(
                "{:>9}  {:<24}  {:<22}  {:>4}  {:<22}  {:<36}  SUMMARY",
                "POSITION", "RECORDED", "TYPE", "VER", "STREAM", "WORKSPACE"
            );
        }
    }

    pub fn event(&self, e: &RecordedEvent) {
        let meta = e.meta();
        let summary = e
            .event()
            .map(|ev| format!("{ev:?}"))
            .unwrap_or_else(|| "(unknown event type)".into());
        if self.json {
            let v = serde_json::json!({
                "position": e.position,
                "recorded_at": e.recorded_at.to_rfc3339(),
                "stream_id": e.stream_id,
                "version": e.version,
                "event_type": e.event_type(),
                "event_id": meta.event_id,
                "workspace_id": meta.workspace_id,
                "integration_id": meta.integration_id,
                "correlation_id": meta.correlation_id,
                "causation_id": meta.causation_id,
                "traceparent": meta.traceparent,
                "event": summary,
            });
            println!("{v}");
        } else {
            println!(
                "{:>9}  {:<24}  {:<22}  {:>4}  {:<22}  {:<36}  {}",
                e.position,
                e.recorded_at.format("%Y-%m-%d %H:%M:%S%.3f"),
                e.event_type(),
                e.version,
                short(&e.stream_id, 22),
                short(&meta.workspace_id, 36),
                short(&summary, 100)
            );
        }
    }

    /// A one-line result: JSON with `fields`, or the sentence for people.
    pub fn message(&self, kind: &str, fields: &[(&str, String)], sentence: &str) {
        if self.json {
            let mut m = serde_json::Map::new();
            m.insert("result".into(), kind.into());
            for (k, v) in fields {
                m.insert((*k).into(), v.clone().into());
            }
            println!("{}", serde_json::Value::Object(m));
        } else {
            println!("{sentence}");
        }
    }

    pub fn table(&self, headers: &[&str], rows: &[Vec<String>]) {
        if self.json {
            for r in rows {
                let m: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .zip(r)
                    .map(|(h, v)| (h.to_lowercase(), serde_json::Value::from(v.clone())))
                    .collect();
                println!("{}", serde_json::Value::Object(m));
            }
            return;
        }
        let widths: Vec<usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                rows.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(h.len())
            })
            .collect();
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
        for r in rows {
            println!("{}", line(r.clone()));
        }
    }
}
