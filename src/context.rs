//! What one request learns while it is served: its id (echoed in `X-Request-Id` and in every
//! problem body) and the facts the audit log records (the caller, the phone number and group
//! concerned, a creation's request id, Meta's answer to the last upstream attempt).
//!
//! A leaf: any layer may note a fact here without knowing who reads it. The telemetry
//! middleware opens the context for each request; the audit middleware reads it at the end.
//! Outside a request (background work, the CLI) notes go nowhere.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

struct RequestContext {
    id: String,
    notes: Mutex<Notes>,
}

/// What Meta answered to the last attempt of an upstream call.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UpstreamCall {
    /// Meta's HTTP status; None when Meta never answered.
    pub status: Option<u16>,
    /// Meta's `error.code`, when Meta refused.
    pub code: Option<i64>,
    pub fbtrace_id: Option<String>,
}

/// The audit facts of one request.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub team: Option<String>,
    pub jti: Option<String>,
    pub phone_number_id: Option<String>,
    pub group_id: Option<String>,
    pub create_request_id: Option<String>,
    pub upstream: Option<UpstreamCall>,
    pub details: Map<String, Value>,
}

/// Runs `fut` as the request `id`; answers its output and the notes it took.
pub async fn scope<F: Future>(id: String, fut: F) -> (F::Output, Notes) {
    let context = Arc::new(RequestContext {
        id,
        notes: Mutex::default(),
    });
    let output = CONTEXT.scope(context.clone(), fut).await;
    let notes = std::mem::take(&mut *context.notes.lock().unwrap_or_else(|p| p.into_inner()));
    (output, notes)
}

/// The id of the request being served; "none" outside a request.
pub fn current_request_id() -> String {
    CONTEXT
        .try_with(|c| c.id.clone())
        .unwrap_or_else(|_| "none".to_owned())
}

/// The notes taken so far in this request (empty outside a request).
pub fn notes() -> Notes {
    CONTEXT
        .try_with(|c| c.notes.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .unwrap_or_default()
}

fn note(f: impl FnOnce(&mut Notes)) {
    let _ = CONTEXT.try_with(|c| f(&mut c.notes.lock().unwrap_or_else(|p| p.into_inner())));
}

/// The authenticated caller (the token's `jti`, never the token).
pub fn note_caller(team: &str, jti: &str) {
    note(|n| {
        n.team = Some(team.to_owned());
        n.jti = Some(jti.to_owned());
    });
}

pub fn note_phone_number(pn: &str) {
    note(|n| n.phone_number_id = Some(pn.to_owned()));
}

pub fn note_group(group_id: &str) {
    note(|n| n.group_id = Some(group_id.to_owned()));
}

/// The gateway's id of a group creation: the group's audit records include this call once
/// the creation produced a group.
pub fn note_create_request(request_id: &str) {
    note(|n| n.create_request_id = Some(request_id.to_owned()));
}

/// Meta's answer to the last upstream attempt.
pub fn note_upstream(call: UpstreamCall) {
    note(|n| n.upstream = Some(call));
}

/// A fact specific to the call, e.g. the jti of the token an admin issued. Never a secret.
pub fn note_detail(key: &str, value: impl Into<Value>) {
    let value = value.into();
    note(|n| {
        n.details.insert(key.to_owned(), value);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_stay_within_their_request() {
        note_group("outside");
        assert!(notes().group_id.is_none());
        let (inside, _) = scope("r1".into(), async {
            note_group("G1");
            note_upstream(UpstreamCall {
                status: Some(400),
                code: Some(131041),
                fbtrace_id: Some("trace".into()),
            });
            (current_request_id(), notes())
        })
        .await;
        assert_eq!(inside.0, "r1");
        assert_eq!(inside.1.group_id.as_deref(), Some("G1"));
        assert_eq!(inside.1.upstream.unwrap().code, Some(131041));
        assert_eq!(current_request_id(), "none");
    }
}
