//! The audit middleware: every authenticated mutating call under `/v1` (POST, PUT, PATCH,
//! DELETE) and every authenticated admin call gets one record, written once the answer is
//! known, from what the request noted on the way (`context`): the caller, the phone number
//! and group, a creation's request id, Meta's status and fbtrace_id.
//!
//! Calls refused before authentication leave no record: anyone could send them as fast as
//! they like and fill the database. They are counted and logged at a bounded rate instead
//! (`telemetry`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, web};
use serde_json::Value;

use crate::clock::now;
use crate::context::{self, Notes};
use crate::domain::{GroupId, PhoneNumberId};
use crate::services::audit::AuditLog;
use crate::storage::AuditEntry;

/// Mutating calls under /v1, and every admin call (reads included).
fn is_audited(method: &Method, path: &str) -> bool {
    let mutating = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    (path.starts_with("/v1/") && mutating) || path.starts_with("/v1/admin/")
}

/// Writes one audit row per authenticated audited request, after the handler answered and before the
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
    let result = next.call(req).await;
    let notes = context::notes();
    if notes.team.is_none() {
        return result;
    }
    let (route, status, request) = match &result {
        Ok(res) => match res.request().match_pattern() {
            Some(route) => (route, res.status().as_u16(), Some(res.request())),
            // No such route: nothing was called.
            None => return result,
        },
        Err(e) => (raw_path, e.as_response_error().status_code().as_u16(), None),
    };
    let entry = entry(occurred_at, method, route, status, request, notes);
    log.record(&entry).await;
    result
}

fn entry(
    occurred_at: String,
    method: String,
    route: String,
    status: u16,
    request: Option<&HttpRequest>,
    notes: Notes,
) -> AuditEntry {
    // Path parameters count only when valid: a malformed id is not an id.
    let param = |name: &str| request.and_then(|r| r.match_info().get(name).map(str::to_owned));
    let path_pn = param("phone_number_id").filter(|p| PhoneNumberId::parse(p).is_ok());
    let path_group = param("group_id").filter(|g| GroupId::parse(g).is_ok());
    let upstream = notes.upstream.unwrap_or_default();
    AuditEntry {
        occurred_at,
        team: notes.team,
        jti: notes.jti,
        method,
        route,
        phone_number_id: notes.phone_number_id.or(path_pn),
        group_id: notes.group_id.or(path_group),
        create_request_id: notes.create_request_id,
        request_id: context::current_request_id(),
        upstream_status: upstream.status,
        upstream_code: upstream.code,
        fbtrace_id: upstream.fbtrace_id,
        status,
        details: (!notes.details.is_empty()).then_some(Value::Object(notes.details)),
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
}
