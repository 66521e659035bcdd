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
use rp_platform::ids::WorkspaceId;
use rp_platform::paging::{self, PageSize};
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
        apikeys::authenticate(&self.pool, req).await
    }
}

/// ListMatches: 100 matches by default, at most 1000.
pub const MATCHES_PAGE: PageSize = PageSize::new(100, 1000);

/// ListReviews: 50 review cases by default, at most 500.
pub const REVIEWS_PAGE: PageSize = PageSize::new(50, 500);

/// The listings' tags in their page tokens ([`rp_platform::paging`]).
const MATCHES_TAG: &str = "matches-1";
const REVIEWS_TAG: &str = "reviews-1";

fn db(op: &'static str) -> impl Fn(sqlx::Error) -> Status {
    move |e| grpc::unavailable(op, &e)
}

/// ListMatches' next page token: the last row's (LinkedIn id, CRM id), bound to the listing it
/// came from (workspace and `linkedin_id` filter).
fn encode_matches_token(ws: WorkspaceId, only: &str, linkedin_id: &str, crm_id: &str) -> String {
    paging::encode_token(MATCHES_TAG, &[&ws.to_string(), only, linkedin_id, crm_id])
}

fn decode_matches_token(
    token: &str,
    ws: WorkspaceId,
    only: &str,
) -> Result<Option<(String, String)>, Status> {
    let Some(fields) = paging::decode_token(MATCHES_TAG, token, 4)? else {
        return Ok(None);
    };
    let [token_ws, token_only, linkedin_id, crm_id] = &fields[..] else {
        return Err(paging::bad_token());
    };
    if *token_ws != ws.to_string() || token_only != only {
        return Err(paging::foreign_token());
    }
    Ok(Some((linkedin_id.clone(), crm_id.clone())))
}

/// ListReviews' next page token: the last row's LinkedIn id, bound to the workspace.
fn encode_reviews_token(ws: WorkspaceId, linkedin_id: &str) -> String {
    paging::encode_token(REVIEWS_TAG, &[&ws.to_string(), linkedin_id])
}

fn decode_reviews_token(token: &str, ws: WorkspaceId) -> Result<Option<String>, Status> {
    let Some(fields) = paging::decode_token(REVIEWS_TAG, token, 2)? else {
        return Ok(None);
    };
    let [token_ws, linkedin_id] = &fields[..] else {
        return Err(paging::bad_token());
    };
    if *token_ws != ws.to_string() {
        return Err(paging::foreign_token());
    }
    Ok(Some(linkedin_id.clone()))
}

/// The characters of the ids the matcher keeps (LinkedIn organization ids and URNs, HubSpot and
/// Salesforce record ids): ASCII letters, digits and `-`, `_`, `.`, `:`.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// At most this many characters of a refused id are quoted back.
const ECHO_CHARS: usize = 12;

/// A company id of a decision, parsed at the edge: trimmed, 1 to 256 characters of
/// [`id_char`]. A refusal names the field and quotes at most [`ECHO_CHARS`] characters of it.
fn company_id<T, E: std::fmt::Display>(
    field: &'static str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, Status> {
    let refuse = |why: String| {
        let shown: String = raw.trim().chars().take(ECHO_CHARS).collect();
        let more = if raw.trim().chars().count() > ECHO_CHARS {
            "…"
        } else {
            ""
        };
        grpc::invalid_argument(
            field,
            format!("{why} (got {shown:?}{more}); use an id from ListMatches or ListReviews"),
        )
    };
    let id = parse(raw).map_err(|e| refuse(e.to_string()))?;
    if !raw.trim().chars().all(id_char) {
        return Err(refuse(
            "must be a company id: letters, digits, '-', '_', '.' or ':'".into(),
        ));
    }
    Ok(id)
}

#[tonic::async_trait]
impl matches_server::Matches for MatchesApi {
    async fn list_matches(
        &self,
        request: Request<ListMatchesRequest>,
    ) -> Result<Response<ListMatchesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let ws = caller.authorize(&r.workspace_id)?;
        let limit = MATCHES_PAGE.parse(r.page_size)?;
        let only = r.linkedin_id.trim();
        let after = decode_matches_token(&r.page_token, ws, only)?;
        let rows: Vec<(String, String, i32, f64, String)> = sqlx::query_as(
            "SELECT linkedin_id, crm_id, method, score, reason FROM matcher_matches WHERE workspace_id = $1 \
             AND ($2 = '' OR linkedin_id = $2) AND (linkedin_id, crm_id) > ($3, $4) \
             ORDER BY linkedin_id, crm_id LIMIT $5",
        )
        .bind(ws.to_string())
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
            Some(m) if more => encode_matches_token(ws, only, &m.linkedin_id, &m.crm_id),
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
        let ws = caller.authorize(&r.workspace_id)?;
        let limit = REVIEWS_PAGE.parse(r.page_size)?;
        let after = decode_reviews_token(&r.page_token, ws)?;
        let rows: Vec<(String, String, serde_json::Value, Option<String>)> = sqlx::query_as(
            "SELECT r.linkedin_id, r.reason, r.candidates, l.name FROM matcher_reviews r \
             LEFT JOIN matcher_linkedin l ON l.workspace_id = r.workspace_id AND l.linkedin_id = r.linkedin_id \
             WHERE r.workspace_id = $1 AND r.linkedin_id > $2 ORDER BY r.linkedin_id LIMIT $3",
        )
        .bind(ws.to_string())
        .bind(after.as_deref().unwrap_or(""))
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
            Some(r) if more => encode_reviews_token(ws, &r.linkedin_id),
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
        let ws = caller.authorize(&r.workspace_id)?;
        let linkedin_id = company_id("linkedin_id", &r.linkedin_id, LinkedInId::parse)?;
        let crm_id = company_id("crm_id", &r.crm_id, CrmId::parse)?;
        if !matches!(
            MatchDecision::try_from(r.decision),
            Ok(MatchDecision::Confirm | MatchDecision::Reject | MatchDecision::Link)
        ) {
            return Err(grpc::invalid_argument(
                "decision",
                "must be CONFIRM, REJECT or LINK",
            ));
        }
        // Only companies of the caller's workspace: an unknown id and another workspace's get
        // the same answer, which names neither.
        let (linkedin_known, crm_known): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM matcher_linkedin WHERE workspace_id = $1 AND linkedin_id = $2), \
                    EXISTS (SELECT 1 FROM matcher_crm WHERE workspace_id = $1 AND crm_id = $3 AND NOT deleted)",
        )
        .bind(ws.to_string())
        .bind(linkedin_id.as_str())
        .bind(crm_id.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db("recording the decision"))?;
        if !linkedin_known {
            return Err(grpc::not_found(
                "linkedin_id: no LinkedIn company with this id has been synced into this workspace; \
                 use an id from ListMatches or ListReviews",
            ));
        }
        if !crm_known {
            return Err(grpc::not_found(
                "crm_id: no CRM account with this id has been synced into this workspace; use an \
                 id from ListMatches or ListReviews",
            ));
        }
        let event = NewEvent::new(
            ws.to_string(),
            Event::MatchDecisionRecorded(MatchDecisionRecorded {
                linkedin_id: linkedin_id.to_string(),
                crm_id: crm_id.to_string(),
                decision: r.decision,
                decided_by: format!("api-key:{}", caller.key_id),
            }),
        );
        let id = event.event_id;
        self.store
            .append(&ws.matches_stream(), ExpectedVersion::Any, vec![event])
            .await
            .map_err(|e| grpc::unavailable("recording the decision", &e))?;
        Ok(Response::new(RecordDecisionResponse {
            event_id: id.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(n: u128) -> WorkspaceId {
        WorkspaceId::new(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn tokens_round_trip_within_their_listing() {
        let t = encode_matches_token(ws(1), "li-1", "li-1", "crm-9");
        assert_eq!(
            decode_matches_token(&t, ws(1), "li-1").unwrap(),
            Some(("li-1".to_string(), "crm-9".to_string()))
        );
        assert_eq!(decode_matches_token("", ws(1), "").unwrap(), None);
        let t = encode_reviews_token(ws(1), "li-2");
        assert_eq!(
            decode_reviews_token(&t, ws(1)).unwrap(),
            Some("li-2".to_string())
        );
    }

    #[test]
    fn tokens_of_another_listing_or_garbage_are_refused_naming_the_field() {
        let matches = encode_matches_token(ws(1), "", "a", "b");
        let reviews = encode_reviews_token(ws(1), "a");
        let foreign = [
            decode_matches_token(&matches, ws(2), "").unwrap_err(),
            decode_matches_token(&matches, ws(1), "a").unwrap_err(),
            decode_reviews_token(&reviews, ws(2)).unwrap_err(),
        ];
        for e in foreign {
            assert_eq!(e.message(), paging::foreign_token().message());
        }
        let bad = [
            decode_matches_token(&reviews, ws(1), "").unwrap_err(),
            decode_reviews_token(&matches, ws(1)).unwrap_err(),
            decode_matches_token("zz", ws(1), "").unwrap_err(),
        ];
        for e in bad {
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().starts_with("page_token: "), "{}", e.message());
        }
    }

    #[test]
    fn page_sizes_keep_their_defaults_and_maxima() {
        assert_eq!(MATCHES_PAGE.parse(0).unwrap(), 100);
        assert_eq!(MATCHES_PAGE.parse(1000).unwrap(), 1000);
        assert_eq!(REVIEWS_PAGE.parse(0).unwrap(), 50);
        assert_eq!(REVIEWS_PAGE.parse(500).unwrap(), 500);
        for e in [
            MATCHES_PAGE.parse(1001).unwrap_err(),
            REVIEWS_PAGE.parse(501).unwrap_err(),
        ] {
            assert!(e.message().starts_with("page_size: "), "{}", e.message());
        }
    }
}
