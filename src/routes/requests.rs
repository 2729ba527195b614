//! `GET /v1/group-requests/{request_id}`: how a creation went.

use actix_web::{get, web};

use super::extract::scope::GroupsRead;
use super::extract::{Authorized, Input, Parts};
use super::responses::{GroupRefusals, Refusals};
use crate::domain::{FieldErrors, RequestId};
use crate::error::ApiError;
use crate::services::creation::Creations;
use crate::storage::CreateRequest;

pub struct RequestPath(RequestId);

impl Input for RequestPath {
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let raw = parts.path("request_id").unwrap_or_default();
        Ok(errors
            .check("request_id", RequestId::parse(raw))
            .map(RequestPath))
    }
}

/// The state of a group creation: `pending` until Meta's webhook arrives, then `created`
/// (with `group_id` and `invite_link`) or `failed` (with Meta's `error`).
#[utoipa::path(
    tag = "groups",
    operation_id = "get_group_request",
    params(("request_id" = String, Path, description = "The id answered by create_group")),
    responses(
        (status = 200, description = "The creation", body = CreateRequest),
        Refusals, GroupRefusals,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/group-requests/{request_id}")]
pub async fn get_group_request(
    call: Authorized<GroupsRead, RequestPath>,
    creations: web::Data<Creations>,
) -> Result<web::Json<CreateRequest>, ApiError> {
    let id = &call.input.0;
    let request = creations
        .get(&call.principal.team, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("group request {id} not found")))?;
    Ok(web::Json(request))
}
