//! `GET /v1/group-requests/{request_id}`: how a creation went.

use actix_web::{get, web};

use super::{finish, validated_request_id};
use crate::auth::{Principal, Scope};
use crate::domain::FieldErrors;
use crate::error::{ApiError, Problem};
use crate::registry::{CreateRequest, Registry};

/// The state of a group creation: `pending` until Meta's webhook arrives, then `created`
/// (with `group_id` and `invite_link`) or `failed` (with Meta's `error`).
#[utoipa::path(
    tag = "groups",
    operation_id = "get_group_request",
    params(("request_id" = String, Path, description = "The id answered by create_group")),
    responses(
        (status = 200, description = "The creation", body = CreateRequest),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such creation made by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/group-requests/{request_id}")]
pub async fn get_group_request(
    principal: Principal,
    path: web::Path<String>,
    registry: web::Data<Registry>,
) -> Result<web::Json<CreateRequest>, ApiError> {
    let mut errors = FieldErrors::new();
    let request_id = validated_request_id(&mut errors, &path);
    finish(errors)?;
    principal.require(Scope::GroupsRead)?;
    let not_found = || ApiError::NotFound(format!("group request {path} not found"));
    let request = registry
        .create_request(request_id.as_deref().ok_or_else(not_found)?)
        .await?
        .filter(|r| r.team == principal.team)
        .ok_or_else(not_found)?;
    Ok(web::Json(request))
}
