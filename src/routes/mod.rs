//! HTTP: extractors that authenticate, validate and authorize (`extract`), handlers that make
//! one service call and map its answer, the audit middleware, and the documented error sets.
//! No SQL, no Graph URLs.

pub mod admin;
pub mod audit;
pub mod body;
pub mod endpoints;
pub mod events;
pub mod extract;
pub mod groups;
pub mod health;
pub mod idempotency;
pub mod messages;
pub mod params;
pub mod picture;
pub mod reconcile;
pub mod responses;
pub mod teams;
pub mod usage;
pub mod webhooks;

use std::collections::HashMap;

use actix_web::HttpRequest;
use actix_web::http::header;
use serde_json::{Map, Value};

use crate::domain::FieldErrors;
use crate::error::ApiError;

/// Largest JSON body accepted: requests stay small (README, "API overview", limits);
/// pictures have their own limit.
pub const JSON_LIMIT: usize = 64 * 1024;

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope("/v1")
            .service(groups::create_group)
            .service(groups::get_group_request)
            .service(groups::list_groups)
            .service(groups::get_group)
            .service(groups::update_group)
            .service(groups::set_group_profile_picture)
            .service(groups::delete_group)
            .service(groups::get_invite_link)
            .service(groups::reset_invite_link)
            .service(groups::send_invitation)
            .service(messages::send_group_message)
            .service(groups::list_join_requests)
            .service(groups::approve_join_requests)
            .service(groups::reject_join_requests)
            .service(groups::remove_participants)
            .service(events::list_events)
            .service(admin::admin_list_groups)
            .service(admin::admin_set_group_owner)
            .service(admin::admin_list_audit)
            .service(admin::admin_issue_token)
            .service(admin::admin_revoke_token)
            .service(admin::admin_list_unowned_events)
            .service(endpoints::admin_list_webhook_endpoints)
            .service(endpoints::create_webhook_endpoint)
            .service(endpoints::list_webhook_endpoints)
            .service(endpoints::get_webhook_endpoint)
            .service(endpoints::update_webhook_endpoint)
            .service(endpoints::delete_webhook_endpoint)
            .service(endpoints::rotate_webhook_endpoint_secret)
            .service(endpoints::list_webhook_attempts)
            .service(endpoints::replay_webhook_endpoint)
            .service(teams::admin_list_teams)
            .service(teams::admin_put_team)
            .service(teams::admin_delete_team)
            .service(teams::admin_list_phone_numbers)
            .service(teams::admin_put_phone_number)
            .service(teams::admin_delete_phone_number)
            .service(usage::get_usage)
            .service(usage::admin_get_usage)
            .service(reconcile::admin_reconcile_phone_number),
    )
    .service(webhooks::verify_subscription)
    .service(webhooks::receive)
    .service(health::healthz)
    .service(health::readyz)
    .service(crate::metrics::metrics_endpoint);
}

/// Query parameters as sent; each handler reads the ones it knows.
pub type QueryMap = HashMap<String, String>;

/// The request's `Content-Type` without parameters, lower-cased; empty when absent.
pub(crate) fn declared_media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A JSON object body whose fields are read one by one, so every broken field is reported.
/// A body that is not a JSON object is recorded as an error on `body`; its fields then read
/// as absent without further complaints, so path and query errors are still listed.
pub struct JsonObject {
    map: Map<String, Value>,
    valid: bool,
}

impl JsonObject {
    /// 415 unless the body is declared JSON; a body that is not a JSON object is an error on
    /// the field `body`.
    pub fn parse(
        req: &HttpRequest,
        body: &[u8],
        errors: &mut FieldErrors,
    ) -> Result<Self, ApiError> {
        let declared = declared_media_type(req);
        if !(declared == "application/json" || declared.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(
                "Content-Type must be application/json".into(),
            ));
        }
        let invalid = |errors: &mut FieldErrors, message: String| {
            errors.push("body", message);
            Ok(JsonObject {
                map: Map::new(),
                valid: false,
            })
        };
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(JsonObject { map, valid: true }),
            Ok(_) => invalid(errors, "must be a JSON object".into()),
            Err(e) => invalid(errors, format!("is not valid JSON: {e}")),
        }
    }

    pub fn contains(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    pub fn is_valid(&self) -> bool {
        self.valid
    }

    pub fn reader<'a>(&'a self, errors: &'a mut FieldErrors) -> FieldReader<'a> {
        FieldReader {
            obj: &self.map,
            errors,
            quiet: !self.valid,
        }
    }
}

/// Reads typed fields out of a JSON object, recording what is missing or mistyped.
pub struct FieldReader<'a> {
    obj: &'a Map<String, Value>,
    pub errors: &'a mut FieldErrors,
    /// The body was not an object (already reported): missing fields are not news.
    quiet: bool,
}

impl<'a> FieldReader<'a> {
    fn present(&mut self, name: &str) -> Option<&'a Value> {
        match self.obj.get(name) {
            None => None,
            Some(Value::Null) => {
                // An optional field sent as null is a mistake, not an omission: 400, as README,
                // "API overview", says.
                self.errors.push(name, "must not be null");
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A field that must be present; reported as missing unless the body was no object.
    fn required<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&mut Self, &str) -> Option<T>,
    ) -> Option<T> {
        if !self.obj.contains_key(name) {
            if !self.quiet {
                self.errors.push(name, "is required");
            }
            return None;
        }
        read(self, name)
    }

    /// A present, non-null field read by `as_type`; `expected` names the type when it is not.
    fn typed<T>(
        &mut self,
        name: &str,
        as_type: impl FnOnce(&'a Value) -> Option<T>,
        expected: &str,
    ) -> Option<T> {
        let v = self.present(name)?;
        let value = as_type(v);
        if value.is_none() {
            self.errors.push(name, expected);
        }
        value
    }

    pub fn required_str(&mut self, name: &str) -> Option<&'a str> {
        self.required(name, Self::optional_str)
    }

    pub fn optional_str(&mut self, name: &str) -> Option<&'a str> {
        self.typed(name, Value::as_str, "must be a string")
    }

    /// A required string field turned into a domain value by `parse`; its refusal is
    /// reported under the field's name.
    pub fn required_parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.required(name, |r, name| r.optional_parsed(name, parse))
    }

    /// An optional string field turned into a domain value by `parse`, like
    /// `required_parsed`.
    pub fn optional_parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.optional_str(name)?;
        self.errors.check(name, parse(raw))
    }

    /// True when the field is sent as `null` (for the few fields where null means "reset").
    pub fn is_null(&self, name: &str) -> bool {
        self.obj.get(name).is_some_and(Value::is_null)
    }

    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        self.typed(name, Value::as_bool, "must be true or false")
    }

    /// Whether the field was sent at all (even as `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.obj.contains_key(name)
    }

    /// The names of the fields sent, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.obj.keys().map(String::as_str)
    }

    /// A JSON integer of at least 0; `1.5`, `"60"` and negatives are refused.
    pub fn optional_u64(&mut self, name: &str) -> Option<u64> {
        self.typed(name, Value::as_u64, "must be a non-negative integer")
    }

    pub fn required_array(&mut self, name: &str) -> Option<&'a Vec<Value>> {
        self.required(name, Self::optional_array)
    }

    pub fn optional_array(&mut self, name: &str) -> Option<&'a Vec<Value>> {
        self.typed(name, Value::as_array, "must be an array")
    }

    pub fn required_object(&mut self, name: &str) -> Option<&'a Map<String, Value>> {
        self.required(name, |r, name| {
            r.typed(name, Value::as_object, "must be an object")
        })
    }

    /// Unknown fields are refused: a typo must not be silently ignored.
    pub fn deny_unknown(&mut self, known: &[&str]) {
        for key in self.obj.keys() {
            if !known.contains(&key.as_str()) {
                self.errors.push(key.as_str(), "is not a known field");
            }
        }
    }

    /// Reads the sub-object `object` with a reader of its own; its errors are named
    /// `{prefix}.{field}` in this reader's errors.
    pub fn nested<T>(
        &mut self,
        prefix: &str,
        object: &Map<String, Value>,
        read: impl FnOnce(&mut FieldReader<'_>) -> T,
    ) -> T {
        let mut inner = FieldErrors::new();
        let out = read(&mut FieldReader {
            obj: object,
            errors: &mut inner,
            quiet: false,
        });
        for e in inner.into_vec() {
            self.errors.push(format!("{prefix}.{}", e.field), e.message);
        }
        out
    }
}

/// A list of strings, each parsed, with duplicates and bounds reported per item.
pub fn parse_list<T, K: PartialEq>(
    errors: &mut FieldErrors,
    field: &str,
    items: &[Value],
    count: std::ops::RangeInclusive<usize>,
    parse: impl Fn(&str) -> Result<T, String>,
    identity: impl Fn(&T) -> K,
) -> Vec<T> {
    if !count.contains(&items.len()) {
        let (min, max) = (count.start(), count.end());
        errors.push(field, format!("must have {min}-{max} entries"));
    }
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = format!("{field}[{i}]");
        match item.as_str() {
            None => errors.push(name, "must be a string"),
            Some(s) => {
                if let Some(v) = errors.check(&name, parse(s)) {
                    if out.iter().any(|seen| identity(seen) == identity(&v)) {
                        errors.push(name, "is a duplicate");
                    } else {
                        out.push(v);
                    }
                }
            }
        }
    }
    out
}

/// Turns collected field errors into the 400, or lets the handler go on.
pub fn finish(errors: FieldErrors) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::fields(errors.into_vec()))
    }
}
