//! Liveness and readiness for orchestrators.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ratelimit::RedisStore;
use crate::storage::Storage;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, `degraded` (serving, a shared dependency is down) or
    /// `storage unreachable` (readiness).
    #[schema(example = "ready")]
    pub status: String,
    /// Readiness: each dependency, `ok` or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"storage": "ok", "redis": "ok"}))]
    pub dependencies: Option<BTreeMap<&'static str, String>>,
}

/// What readiness looks at besides storage.
pub struct Dependencies {
    /// The shared rate-limit store, when `[rate_limit] store = "redis"`.
    pub rate_limit_store: Option<Arc<RedisStore>>,
}

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        dependencies: None,
    })
}

/// Each dependency, checked now. Storage is required: without it nothing is served (503).
/// Redis is not: without it each replica counts rate limits on its own (200, `degraded`).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready (`degraded` while Redis is unreachable)", body = Health),
        (status = 503, description = "Storage unreachable", body = Health),
    )
)]
#[get("/readyz")]
pub async fn readyz(storage: web::Data<Storage>, others: web::Data<Dependencies>) -> HttpResponse {
    let (storage_ok, health) = others.check(&storage).await;
    let mut response = if storage_ok {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(health)
}

impl Dependencies {
    /// Each dependency, asked now; whether storage answered.
    async fn check(&self, storage: &Storage) -> (bool, Health) {
        let mut dependencies = BTreeMap::new();
        let storage_ok = match storage.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed: storage unreachable");
                false
            }
        };
        dependencies.insert(
            "storage",
            if storage_ok { "ok" } else { "unreachable" }.into(),
        );
        let mut degraded = false;
        if let Some(redis) = &self.rate_limit_store {
            let state = match redis.ping().await {
                Ok(()) => "ok".to_owned(),
                Err(e) => {
                    degraded = true;
                    format!("unreachable ({e}): rate limits counted per replica")
                }
            };
            dependencies.insert("redis", state);
        }
        let status = match (storage_ok, degraded) {
            (false, _) => "storage unreachable",
            (true, true) => "degraded",
            (true, false) => "ready",
        };
        let health = Health {
            status: status.into(),
            dependencies: Some(dependencies),
        };
        (storage_ok, health)
    }
}
