//! HubSpot's JSON, as it arrives: response bodies, paging, errors. Only the client reads these.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::records::{Pipeline, PipelineStage, RawObject, StageOutcome};

#[derive(Deserialize)]
pub(super) struct TokenInfoResp {
    pub(super) hub_id: u64,
    #[serde(default)]
    pub(super) scopes: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct ListResp {
    pub(super) results: Vec<RawObject>,
    #[serde(default)]
    pub(super) paging: Option<PagingJ>,
}

#[derive(Deserialize)]
pub(super) struct SearchResp {
    pub(super) total: usize,
    pub(super) results: Vec<RawObject>,
    #[serde(default)]
    pub(super) paging: Option<PagingJ>,
}

#[derive(Deserialize)]
pub(super) struct PagingJ {
    pub(super) next: Option<NextJ>,
}

#[derive(Deserialize)]
pub(super) struct NextJ {
    pub(super) after: String,
}

#[derive(Deserialize)]
pub(super) struct PipelinesResp {
    pub(super) results: Vec<PipelineJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PipelineJ {
    pub(super) id: String,
    pub(super) label: String,
    #[serde(default)]
    pub(super) stages: Vec<StageJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StageJ {
    pub(super) id: String,
    pub(super) label: String,
    #[serde(default)]
    pub(super) display_order: i64,
    #[serde(default)]
    pub(super) metadata: HashMap<String, Value>,
}

#[derive(Deserialize)]
pub(super) struct AssocBatchResp {
    #[serde(default)]
    pub(super) results: Vec<AssocBatchJ>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssocBatchJ {
    pub(super) from: AssocFromJ,
    #[serde(default)]
    pub(super) to: Vec<AssocToJ>,
}

#[derive(Deserialize)]
pub(super) struct AssocFromJ {
    pub(super) id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssocToJ {
    pub(super) to_object_id: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorJ {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) category: Option<String>,
    #[serde(default)]
    pub(super) policy_name: Option<String>,
}

/// Stage outcomes from HubSpot's stage metadata: won = closed at probability 1.0, lost = closed
/// at any other probability (HubSpot's lost stages say 0.0).
impl From<PipelineJ> for Pipeline {
    fn from(p: PipelineJ) -> Self {
        let meta = |m: &HashMap<String, Value>, k: &str| -> Option<String> {
            match m.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        Pipeline {
            id: p.id,
            label: p.label,
            stages: p
                .stages
                .into_iter()
                .map(|s| {
                    let closed = meta(&s.metadata, "isClosed").as_deref() == Some("true");
                    let probability =
                        meta(&s.metadata, "probability").and_then(|v| v.parse::<f64>().ok());
                    let outcome = match (closed, probability) {
                        (true, Some(p)) if p >= 1.0 => StageOutcome::Won,
                        (true, _) => StageOutcome::Lost,
                        (false, _) => StageOutcome::Open,
                    };
                    PipelineStage {
                        id: s.id,
                        label: s.label,
                        display_order: s.display_order,
                        outcome,
                        probability,
                    }
                })
                .collect(),
        }
    }
}
