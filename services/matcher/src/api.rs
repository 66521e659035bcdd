//! gRPC `rp.api.v1.Matches`: the matches with their reasons, the cases to review, and manual
//! decisions. Every call is authenticated with the workspace's API key.

use crate::domain::{CrmId, LinkedInId};
use rp_platform::apikeys::{self, Caller};
use rp_platform::contracts::api::v1::{
    CompanyMatch, ListMatchesRequest, ListMatchesResponse, ListReviewsRequest, ListReviewsResponse,
    RecordDecisionRequest, RecordDecisionResponse, Review, ReviewCandidate, matches_server,
};
use rp_platform::contracts::events::v1::{MatchDecision, MatchDecisionRecorded, envelope::Event};
use rp_platform::eventlog::{EventStore, ExpectedVersion, NewEvent};
use rp_platform::grpc;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

pub struct MatchesApi {
    pool: PgPool,
    store: EventStore,
}

impl MatchesApi {
    pub fn new(pool: PgPool) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
            pool,
        }
    }

    pub fn into_server(self) -> matches_server::MatchesServer<Self> {
        matches_server::MatchesServer::new(self)
    }

    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        apikeys::authenticate(&self.pool, req.metadata()).await
    }
}

fn page_size(n: i32, default: i32, max: i32) -> Result<i64, Status> {
    match n {
        0 => Ok(i64::from(default)),
        n if (1..=max).contains(&n) => Ok(i64::from(n)),
        _ => Err(grpc::invalid_argument(
            "page_size",
            format!("must be between 1 and {max} (0 means {default})"),
        )),
    }
}

fn db(op: &'static str) -> impl Fn(sqlx::Error) -> Status {
    move |e| grpc::unavailable(op, &e)
}

/// Page tokens are "<linkedin id>\u{1f}<crm id>" of the last row returned, hex-encoded.
fn decode_token(t: &str) -> Result<Option<(String, String)>, Status> {
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || grpc::invalid_argument("page_token", "is not a token this API returned");
    let bytes = hex::decode(t).map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (a, b) = s.split_once('\u{1f}').ok_or_else(bad)?;
    Ok(Some((a.to_string(), b.to_string())))
}

fn encode_token(a: &str, b: &str) -> String {
    hex::encode(format!("{a}\u{1f}{b}"))
}

#[tonic::async_trait]
impl matches_server::Matches for MatchesApi {
    async fn list_matches(
        &self,
        request: Request<ListMatchesRequest>,
    ) -> Result<Response<ListMatchesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let limit = page_size(r.page_size, 100, 1000)?;
        let after = decode_token(&r.page_token)?;
        let only = r.linkedin_id.trim();
        let rows: Vec<(String, String, i32, f64, String)> = sqlx::query_as(
            "SELECT linkedin_id, crm_id, method, score, reason FROM matcher_matches WHERE workspace_id = $1 \
             AND ($2 = '' OR linkedin_id = $2) AND (linkedin_id, crm_id) > ($3, $4) \
             ORDER BY linkedin_id, crm_id LIMIT $5",
        )
        .bind(&ws)
        .bind(only)
        .bind(after.as_ref().map_or("", |a| a.0.as_str()))
        .bind(after.as_ref().map_or("", |a| a.1.as_str()))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing matches"))?;
        let more = rows.len() as i64 > limit;
        let matches: Vec<CompanyMatch> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(l, c, m, s, reason)| CompanyMatch {
                linkedin_id: l,
                crm_id: c,
                method: m,
                score: s,
                reason,
            })
            .collect();
        let next_page_token = match matches.last() {
            Some(m) if more => encode_token(&m.linkedin_id, &m.crm_id),
            _ => String::new(),
        };
        Ok(Response::new(ListMatchesResponse {
            matches,
            next_page_token,
        }))
    }

    async fn list_reviews(
        &self,
        request: Request<ListReviewsRequest>,
    ) -> Result<Response<ListReviewsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let limit = page_size(r.page_size, 50, 500)?;
        let after = decode_token(&r.page_token)?;
        let rows: Vec<(String, String, serde_json::Value, Option<String>)> = sqlx::query_as(
            "SELECT r.linkedin_id, r.reason, r.candidates, l.name FROM matcher_reviews r \
             LEFT JOIN matcher_linkedin l ON l.workspace_id = r.workspace_id AND l.linkedin_id = r.linkedin_id \
             WHERE r.workspace_id = $1 AND r.linkedin_id > $2 ORDER BY r.linkedin_id LIMIT $3",
        )
        .bind(&ws)
        .bind(after.as_ref().map_or("", |a| a.0.as_str()))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing reviews"))?;
        let more = rows.len() as i64 > limit;
        let reviews: Vec<Review> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(linkedin_id, reason, candidates, name)| Review {
                linkedin_id,
                linkedin_name: name.unwrap_or_default(),
                reason,
                candidates: candidates
                    .as_array()
                    .map(|cs| {
                        cs.iter()
                            .map(|c| ReviewCandidate {
                                crm_id: c["crm_id"].as_str().unwrap_or_default().to_string(),
                                crm_name: c["crm_name"].as_str().unwrap_or_default().to_string(),
                                method: c["method"].as_i64().unwrap_or(0) as i32,
                                score: c["score"].as_f64().unwrap_or(0.0),
                                reason: c["reason"].as_str().unwrap_or_default().to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let next_page_token = match reviews.last() {
            Some(r) if more => encode_token(&r.linkedin_id, ""),
            _ => String::new(),
        };
        Ok(Response::new(ListReviewsResponse {
            reviews,
            next_page_token,
        }))
    }

    async fn record_decision(
        &self,
        request: Request<RecordDecisionRequest>,
    ) -> Result<Response<RecordDecisionResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let ws = caller.authorize(&r.workspace_id)?.to_string();
        let linkedin_id = LinkedInId::parse(&r.linkedin_id)
            .map_err(|e| grpc::invalid_argument("linkedin_id", e))?;
        let crm_id = CrmId::parse(&r.crm_id).map_err(|e| grpc::invalid_argument("crm_id", e))?;
        if !matches!(
            MatchDecision::try_from(r.decision),
            Ok(MatchDecision::Confirm | MatchDecision::Reject | MatchDecision::Link)
        ) {
            return Err(grpc::invalid_argument(
                "decision",
                "must be CONFIRM, REJECT or LINK",
            ));
        }
        let event = NewEvent::new(
            ws.clone(),
            Event::MatchDecisionRecorded(MatchDecisionRecorded {
                linkedin_id: linkedin_id.to_string(),
                crm_id: crm_id.to_string(),
                decision: r.decision,
                decided_by: format!("api-key:{}", caller.key_id),
            }),
        );
        let id = event.event_id;
        self.store
            .append(&format!("matches-{ws}"), ExpectedVersion::Any, vec![event])
            .await
            .map_err(|e| grpc::unavailable("recording the decision", &e))?;
        Ok(Response::new(RecordDecisionResponse {
            event_id: id.to_string(),
        }))
    }
}
