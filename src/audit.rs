//! The audit log: who changed what, through which route, and what Meta said.
//!
//! Every mutating call under `/v1` (POST, PUT, PATCH, DELETE) and every admin call gets one
//! row, written by the `record` middleware once the answer is known. What only the handler
//! or the Graph client learns (the phone number of a group, a creation's request id, Meta's
//! status and fbtrace_id) is noted on the way into a per-request cell (`note_*`), the way
//! `telemetry` keeps the request id. Tokens never reach this module: only their `jti`.

use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, web};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Row, SqlitePool};
use utoipa::ToSchema;

use crate::domain::{GroupId, PhoneNumberId};
use crate::registry::now;

/// Counted when a row could not be written (the call itself already happened).
const AUDIT_WRITE_FAILURES: &str = "wagw_audit_write_failures_total";

tokio::task_local! {
    static NOTES: Arc<Mutex<AuditNotes>>;
}

/// What the handler and the Graph client learned while serving one audited request.
#[derive(Debug, Default, Clone)]
struct AuditNotes {
    team: Option<String>,
    jti: Option<String>,
    phone_number_id: Option<String>,
    group_id: Option<String>,
    create_request_id: Option<String>,
    upstream_status: Option<u16>,
    upstream_code: Option<i64>,
    fbtrace_id: Option<String>,
    details: Map<String, Value>,
}

/// Outside an audited request (background work, the CLI) notes go nowhere.
fn note(f: impl FnOnce(&mut AuditNotes)) {
    let _ = NOTES.try_with(|cell| f(&mut cell.lock().unwrap_or_else(|p| p.into_inner())));
}

/// The authenticated caller.
pub fn note_caller(team: &str, jti: &str) {
    note(|n| {
        n.team = Some(team.to_owned());
        n.jti = Some(jti.to_owned());
    });
}

pub fn note_phone_number(pn: &PhoneNumberId) {
    note(|n| n.phone_number_id = Some(pn.to_string()));
}

pub fn note_group(group_id: &str) {
    note(|n| n.group_id = Some(group_id.to_owned()));
}

/// The gateway's id of a group creation: the group's records include this call once the
/// creation produced a group.
pub fn note_create_request(request_id: &str) {
    note(|n| n.create_request_id = Some(request_id.to_owned()));
}

/// Meta's answer to the last upstream attempt: its HTTP status (None when Meta never
/// answered), its error code and fbtrace_id when it gave them.
pub fn note_upstream(status: Option<u16>, code: Option<i64>, fbtrace_id: Option<&str>) {
    note(|n| {
        n.upstream_status = status;
        n.upstream_code = code;
        n.fbtrace_id = fbtrace_id.map(str::to_owned);
    });
}

/// A fact specific to the call, e.g. the jti of the token an admin issued. Never a secret.
pub fn note_detail(key: &str, value: impl Into<Value>) {
    let value = value.into();
    note(|n| {
        n.details.insert(key.to_owned(), value);
    });
}

/// Mutating calls under /v1, and every admin call (reads included).
fn is_audited(method: &Method, path: &str) -> bool {
    let mutating = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    (path.starts_with("/v1/") && mutating) || path.starts_with("/v1/admin/")
}

/// Writes one audit row per audited request, after the handler answered and before the
/// answer leaves, so a caller that reads the audit log next finds its own call. Runs inside
/// `telemetry::request_context`, whose request id it records.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let log = match req.app_data::<web::Data<AuditLog>>() {
        Some(log) if is_audited(req.method(), req.path()) => log.clone(),
        _ => return next.call(req).await,
    };
    let occurred_at = now();
    let method = req.method().to_string();
    let raw_path = req.path().to_owned();
    let cell = Arc::new(Mutex::new(AuditNotes::default()));
    let result = NOTES.scope(cell.clone(), next.call(req)).await;
    let notes = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (route, status, request) = match &result {
        Ok(res) => match res.request().match_pattern() {
            Some(route) => (route, res.status().as_u16(), Some(res.request())),
            // No such route: nothing was called.
            None => return result,
        },
        Err(e) => (raw_path, e.as_response_error().status_code().as_u16(), None),
    };
    let entry = NewAuditEntry::new(occurred_at, method, route, status, request, notes);
    if let Err(e) = log.insert(&entry).await {
        metrics::counter!(AUDIT_WRITE_FAILURES).increment(1);
        tracing::error!(error = %e, route = entry.route, "cannot write the audit record");
    }
    result
}

/// One row to write.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    pub occurred_at: String,
    pub team: Option<String>,
    pub jti: Option<String>,
    pub method: String,
    pub route: String,
    pub phone_number_id: Option<String>,
    pub group_id: Option<String>,
    pub create_request_id: Option<String>,
    pub request_id: String,
    pub upstream_status: Option<u16>,
    pub upstream_code: Option<i64>,
    pub fbtrace_id: Option<String>,
    pub status: u16,
    pub details: Option<Value>,
}

impl NewAuditEntry {
    fn new(
        occurred_at: String,
        method: String,
        route: String,
        status: u16,
        request: Option<&HttpRequest>,
        notes: AuditNotes,
    ) -> Self {
        // Path parameters count only when valid: a malformed id is not an id.
        let param = |name: &str| request.and_then(|r| r.match_info().get(name).map(str::to_owned));
        let path_pn = param("phone_number_id").filter(|p| PhoneNumberId::parse(p).is_ok());
        let path_group = param("group_id").filter(|g| GroupId::parse(g).is_ok());
        NewAuditEntry {
            occurred_at,
            team: notes.team,
            jti: notes.jti,
            method,
            route,
            phone_number_id: notes.phone_number_id.or(path_pn),
            group_id: notes.group_id.or(path_group),
            create_request_id: notes.create_request_id,
            request_id: crate::telemetry::current_request_id(),
            upstream_status: notes.upstream_status,
            upstream_code: notes.upstream_code,
            fbtrace_id: notes.fbtrace_id,
            status,
            details: (!notes.details.is_empty()).then_some(Value::Object(notes.details)),
        }
    }
}

/// One audit record as `GET /v1/admin/audit` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "42",
    "occurred_at": "2026-11-26T10:15:00.123Z",
    "team": "sales",
    "jti": "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f",
    "method": "DELETE",
    "route": "/v1/groups/{group_id}",
    "phone_number_id": "12784358810",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "request_id": "3f1c2a7e-0d1b-4a55-9a43-9b2f4f9f3c10",
    "upstream_status": 200,
    "fbtrace_id": "AbCdEfGh123",
    "status": 204
}))]
pub struct AuditRecord {
    /// Stable id of the record.
    pub id: String,
    /// When the call arrived (RFC 3339, UTC).
    pub occurred_at: String,
    /// The caller's team; absent when the call was not authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The id of the caller's token (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub method: String,
    /// The route template, e.g. `/v1/groups/{group_id}`.
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// For a group creation: the gateway's request id (`/v1/group-requests/{request_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_request_id: Option<String>,
    /// The call's `X-Request-Id`.
    pub request_id: String,
    /// HTTP status of Meta's answer to the last upstream attempt; absent when Meta was not
    /// called or did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Meta's `error.code`, when Meta refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<i64>,
    /// Meta's trace id, for Meta's support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    /// The HTTP status the gateway answered.
    pub status: u16,
    /// Facts specific to the call: `issued_jti`, `issued_team` and `scopes` of an issued
    /// token, `revoked_jti`, `owner` and `previous_owner` of an ownership change.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub team: Option<String>,
    /// Records of the group, and of the creation that produced it.
    pub group_id: Option<String>,
    /// RFC 3339, UTC, milliseconds (the stored form).
    pub since: Option<String>,
    /// Only records older than this cursor's record.
    pub before_seq: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// The seq of the last record, when more records follow.
    pub next: Option<i64>,
}

/// The audit table.
#[derive(Clone)]
pub struct AuditLog {
    pool: SqlitePool,
}

impl AuditLog {
    pub fn new(pool: SqlitePool) -> Self {
        AuditLog { pool }
    }

    pub async fn insert(&self, e: &NewAuditEntry) -> Result<(), sqlx::Error> {
        // A creation that completed while the caller waited already knows its group.
        sqlx::query(
            "INSERT INTO audit_log (occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details)
             VALUES (?, ?, ?, ?, ?, ?,
               COALESCE(?, (SELECT group_id FROM create_requests WHERE request_id = ?)),
               ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.occurred_at)
        .bind(&e.team)
        .bind(&e.jti)
        .bind(&e.method)
        .bind(&e.route)
        .bind(&e.phone_number_id)
        .bind(&e.group_id)
        .bind(&e.create_request_id)
        .bind(&e.create_request_id)
        .bind(&e.request_id)
        .bind(e.upstream_status.map(i64::from))
        .bind(e.upstream_code)
        .bind(&e.fbtrace_id)
        .bind(i64::from(e.status))
        .bind(e.details.as_ref().map(Value::to_string))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first, `limit` at most.
    pub async fn list(&self, filter: &AuditFilter, limit: u32) -> Result<AuditPage, sqlx::Error> {
        let mut sql = String::from(
            "SELECT seq, occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details
             FROM audit_log WHERE 1 = 1",
        );
        if filter.team.is_some() {
            sql.push_str(" AND team = ?");
        }
        if filter.group_id.is_some() {
            sql.push_str(
                " AND (group_id = ? OR create_request_id IN
                   (SELECT request_id FROM create_requests WHERE group_id = ?))",
            );
        }
        if filter.since.is_some() {
            sql.push_str(" AND occurred_at >= ?");
        }
        if filter.before_seq.is_some() {
            sql.push_str(" AND seq < ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        // Only fixed fragments above; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(team) = &filter.team {
            query = query.bind(team);
        }
        if let Some(group) = &filter.group_id {
            query = query.bind(group).bind(group);
        }
        if let Some(since) = &filter.since {
            query = query.bind(since);
        }
        if let Some(seq) = filter.before_seq {
            query = query.bind(seq);
        }
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut records: Vec<(i64, AuditRecord)> = rows
            .into_iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let details: Option<String> = r.get(14);
                (
                    seq,
                    AuditRecord {
                        id: seq.to_string(),
                        occurred_at: r.get(1),
                        team: r.get(2),
                        jti: r.get(3),
                        method: r.get(4),
                        route: r.get(5),
                        phone_number_id: r.get(6),
                        group_id: r.get(7),
                        create_request_id: r.get(8),
                        request_id: r.get(9),
                        upstream_status: r
                            .get::<Option<i64>, _>(10)
                            .and_then(|s| u16::try_from(s).ok()),
                        upstream_code: r.get(11),
                        fbtrace_id: r.get(12),
                        status: u16::try_from(r.get::<i64, _>(13)).unwrap_or_default(),
                        details: details.and_then(|d| serde_json::from_str(&d).ok()),
                    },
                )
            })
            .collect();
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next = if more {
            records.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        Ok(AuditPage {
            records: records.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutating_and_admin_calls_are_audited() {
        assert!(is_audited(&Method::POST, "/v1/phone-numbers/1/groups"));
        assert!(is_audited(&Method::DELETE, "/v1/groups/G"));
        assert!(is_audited(&Method::GET, "/v1/admin/audit"));
        assert!(!is_audited(&Method::GET, "/v1/groups/G"));
        assert!(!is_audited(&Method::POST, "/webhooks/whatsapp"));
        assert!(!is_audited(&Method::POST, "/sandbox/groups/G/join"));
    }

    #[tokio::test]
    async fn notes_outside_a_request_go_nowhere() {
        note_group("G");
        let cell = Arc::new(Mutex::new(AuditNotes::default()));
        NOTES
            .scope(cell.clone(), async {
                note_group("G1");
                note_upstream(Some(400), Some(131041), Some("trace"));
            })
            .await;
        let notes = cell.lock().unwrap().clone();
        assert_eq!(notes.group_id.as_deref(), Some("G1"));
        assert_eq!(notes.upstream_code, Some(131041));
    }
}
