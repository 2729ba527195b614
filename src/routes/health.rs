//! Liveness and readiness for orchestrators.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::Storage;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
    })
}

/// Storage answers (the configuration was valid, or the process would not run).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Storage unreachable", body = Health),
    )
)]
#[get("/readyz")]
pub async fn readyz(storage: web::Data<Storage>) -> HttpResponse {
    match storage.ping().await {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ready".into(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: storage unreachable");
            HttpResponse::ServiceUnavailable().json(Health {
                status: "storage unreachable".into(),
            })
        }
    }
}
