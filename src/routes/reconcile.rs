//! `POST /v1/admin/phone-numbers/{pn}/reconcile` (DESIGN §15): the registry compared with
//! Meta's list of the number's active groups, now.

use actix_web::{post, web};

use super::extract::scope::Admin;
use super::extract::{Granted, NoInput};
use super::params::PhoneNumberPath;
use super::responses::{Refusals, UpstreamFailures};
use crate::error::ApiError;
use crate::graph::GraphClient;
use crate::services::reconcile::{Reconciler, Reconciliation};
use crate::storage::Storage;

/// Compares the registry with Meta's list of the number's active groups (every page): groups
/// the registry holds as active that Meta no longer lists are marked deleted (their team gets
/// `group.deleted` with `data.reason: "reconciled"`); groups Meta lists that no team owns are
/// answered as `unowned`, ready to adopt. Also runs every `graph.reconcile_interval`. A token
/// with `phone_numbers` reconciles only its own numbers (403).
#[utoipa::path(
    tag = "admin",
    params(PhoneNumberPath),
    responses(
        (status = 200, description = "What the comparison found and did", body = Reconciliation),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["admin"]))
)]
#[post("/admin/phone-numbers/{phone_number_id}/reconcile")]
pub async fn admin_reconcile_phone_number(
    call: Granted<Admin, NoInput>,
    graph: web::Data<GraphClient>,
    storage: web::Data<Storage>,
) -> Result<web::Json<Reconciliation>, ApiError> {
    let reconciler = Reconciler::new(storage.get_ref().clone());
    Ok(web::Json(
        reconciler.reconcile(&graph, call.phone_number()).await?,
    ))
}
