//! Liveness and readiness for orchestrators.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ratelimit::RedisStore;
use crate::storage::Storage;
use crate::supervisor::Supervisor;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, `degraded` (serving, a shared dependency is down),
    /// `storage unreachable` or `task down` (a background task is restarting) for readiness.
    #[schema(example = "ready")]
    pub status: String,
    /// Readiness: each dependency, `ok` or what is wrong with it; a background task that is
    /// down appears as `task:<name>` with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"storage": "ok", "redis": "ok"}))]
    pub dependencies: Option<BTreeMap<String, String>>,
}

/// What readiness looks at besides storage.
pub struct Dependencies {
    /// The shared rate-limit store, when `[rate_limit] store = "redis"`.
    pub rate_limit_store: Option<Arc<RedisStore>>,
    /// The gateway's background tasks.
    pub tasks: Supervisor,
}

/// The longest readiness waits for a dependency: an orchestrator's probe must get an answer
/// within a second, also from a database that stopped answering.
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        dependencies: None,
    })
}

/// Each dependency, checked now (within a second). Storage and the background tasks are
/// required: without them nothing is served (503). Redis is not: without it each replica
/// counts rate limits on its own (200, `degraded`).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready (`degraded` while Redis is unreachable)", body = Health),
        (status = 503, description = "Storage unreachable, or a background task down", body = Health),
    )
)]
#[get("/readyz")]
pub async fn readyz(storage: web::Data<Storage>, others: web::Data<Dependencies>) -> HttpResponse {
    let (ready, health) = others.check(&storage).await;
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.json(health)
}

impl Dependencies {
    /// Each dependency, asked now; whether the gateway can serve.
    async fn check(&self, storage: &Storage) -> (bool, Health) {
        let mut dependencies = BTreeMap::new();
        let (storage_check, redis_check) =
            tokio::join!(tokio::time::timeout(PROBE_TIMEOUT, storage.ping()), async {
                match &self.rate_limit_store {
                    Some(redis) => Some(tokio::time::timeout(PROBE_TIMEOUT, redis.ping()).await),
                    None => None,
                }
            });
        let storage_ok = match storage_check {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness check failed: storage unreachable");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "readiness check failed: storage did not answer within {PROBE_TIMEOUT:?}"
                );
                false
            }
        };
        dependencies.insert(
            "storage".to_owned(),
            if storage_ok { "ok" } else { "unreachable" }.into(),
        );
        let mut degraded = false;
        if let Some(redis) = redis_check {
            let state = match redis {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => {
                    degraded = true;
                    format!("unreachable ({e}): rate limits counted per replica")
                }
                Err(_) => {
                    degraded = true;
                    "no answer within a second: rate limits counted per replica".to_owned()
                }
            };
            dependencies.insert("redis".to_owned(), state);
        }
        let down = self.tasks.down();
        for (task, why) in &down {
            dependencies.insert(format!("task:{task}"), why.clone());
        }
        let status = match (storage_ok, down.is_empty(), degraded) {
            (false, _, _) => "storage unreachable",
            (true, false, _) => "task down",
            (true, true, true) => "degraded",
            (true, true, false) => "ready",
        };
        let health = Health {
            status: status.into(),
            dependencies: Some(dependencies),
        };
        (storage_ok && down.is_empty(), health)
    }
}
