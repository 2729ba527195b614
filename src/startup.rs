//! Builds the application from settings: storage, workers, routes, Swagger UI.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{Service, apply_fn_factory, map_config};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::AppConfig;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpResponse, web};
use secrecy::ExposeSecret;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{Authenticator, KeyError, TokenIssuer};
use crate::config::{GraphMode, RateLimitSettings, RateLimitStore, Settings};
use crate::connection::RefusedBeforeRouting;
use crate::error::{self, ApiError};
use crate::graph::GraphClient;
use crate::openapi::{ApiDoc, spec};
use crate::platform::{Directory, LiveLimiter};
use crate::process::BoundServer;
use crate::ratelimit::{AddressBuckets, Rate, RedisStore};
use crate::routes::admin::AdminContext;
use crate::routes::body::BodyBudget;
use crate::routes::idempotency::Idempotency;
use crate::routes::webhooks::{IngressLimits, VerifyToken};
use crate::routes::{self, JSON_LIMIT};
use crate::services::audit::AuditLog;
use crate::services::creation::{Creations, Waiters};
use crate::services::events::Feed;
use crate::services::groups::Groups;
use crate::services::ownership::Ownership;
use crate::services::processing::{self, Ingress};
use crate::services::registry::{Registry, RegistryError};
use crate::services::revocation::{self, RevocationList};
use crate::storage::{Storage, StorageError};
use crate::supervisor::Supervisor;
use crate::telemetry::request_context;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `url` is shown with its password masked (`ServiceUrl`'s `Display`).
    #[error("storage {url} is unusable: {source}")]
    Storage { url: String, source: StorageError },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("rate_limit.redis_url is unusable: {0}")]
    RateLimitStore(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The gateway: `build` wires config, storage, Meta's client and the routes into a bound server.
pub struct Application;

impl Application {
    /// Binds (port 0 picks a free port), opens storage, starts the webhook processor.
    pub async fn build(settings: Settings) -> Result<BoundServer, StartupError> {
        let storage = Storage::connect(
            settings.storage.url.expose_secret(),
            settings.storage.max_connections,
        )
        .await
        .map_err(|source| StartupError::Storage {
            url: settings.storage.url.to_string(),
            source,
        })?;
        // Every background task of this gateway runs under it; /readyz reports its state.
        let supervisor = Supervisor::default();
        // DESIGN §11: the teams and numbers in force, configuration's and the admin API's.
        let registry = Registry::start(
            Directory::from_settings(&settings),
            &storage,
            settings.encryption.keys.clone(),
            settings.storage.cache_ttl.0,
        )
        .await?;
        registry.follow(&storage, &supervisor);
        let directory = registry.directory().clone();
        let registry = web::Data::new(registry);
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();

        let graph_base = match settings.graph.mode {
            GraphMode::Live => settings.graph.base_url.clone(),
            // The gateway talks to its own simulation over HTTP, through the same client code.
            GraphMode::Sandbox => format!("http://127.0.0.1:{port}/sandbox/graph"),
        };
        crate::metrics::install();
        let api_version = settings.graph.api_version.clone();
        let timeout = Duration::from_millis(settings.graph.timeout_ms);
        let attempt_timeout = Duration::from_millis(settings.graph.attempt_timeout_ms);
        let tokens = directory.clone();
        // With `store = "redis"`, every replica draws from the same buckets.
        let shared = match settings.rate_limit.store {
            RateLimitStore::Local => None,
            RateLimitStore::Redis => Some(
                RedisStore::new(
                    settings
                        .rate_limit
                        .redis_url
                        .as_ref()
                        .map(ExposeSecret::expose_secret)
                        .unwrap_or_default(),
                )
                .map_err(StartupError::RateLimitStore)?,
            ),
        };
        let number_limits: crate::graph::NumberLimits =
            Arc::new(LiveLimiter::new("phone_number", shared.clone(), {
                let directory = directory.clone();
                move |pn| directory.number_rate(pn)
            }));
        let team_limits = web::Data::new(LiveLimiter::new("team", shared.clone(), {
            let directory = directory.clone();
            move |team| directory.team_rate(team)
        }));
        let readiness = web::Data::new(routes::health::Dependencies {
            rate_limit_store: shared,
            tasks: supervisor.clone(),
        });
        let body_timeout = web::Data::new(routes::body::BodyTimeout(Duration::from_millis(
            settings.server.body_timeout_ms,
        )));
        let anonymous_limits = Arc::new(AddressBuckets::new(rate(
            &settings.server.anonymous_rate_limit,
        )));
        let refused_before_routing = RefusedBeforeRouting::new(anonymous_limits.clone());
        let anonymous_limits = web::Data::from(anonymous_limits);
        let ingress_limits = web::Data::new(IngressLimits {
            max_body: settings.webhooks.max_body_bytes,
            budget: BodyBudget::new(settings.webhooks.max_in_flight_bytes),
        });
        let teams = directory.clone();
        // Revoked tokens are refused from the first request on; other replicas' revocations
        // arrive with the background refresh.
        let revocations = RevocationList::load(storage.tokens.clone())
            .await
            .map_err(|source| StartupError::Storage {
                url: settings.storage.url.to_string(),
                source,
            })?;
        revocations.spawn_refresher(revocation::REFRESH_EVERY, &supervisor);
        let authenticator = web::Data::new(
            Authenticator::new(&settings.auth, teams.clone())?
                .with_revocations(revocations.clone()),
        );
        let revocations = web::Data::new(revocations);
        let can_sign = settings
            .auth
            .keys
            .iter()
            .any(|k| k.secret.is_some() || k.private_key_pem.is_some());
        let admin = web::Data::new(AdminContext {
            teams,
            max_token_ttl_seconds: settings.auth.max_token_ttl_seconds,
            issuer: can_sign
                .then(|| TokenIssuer::new(&settings.auth, None))
                .transpose()?,
        });
        let audit_log = web::Data::new(AuditLog::new(storage.audit.clone()));
        let verify_token = web::Data::new(VerifyToken(settings.webhooks.verify_token.clone()));
        let deliveries = crate::services::delivery::spawn(
            &settings.delivery,
            &settings.teams,
            &storage,
            &supervisor,
        );
        let waiters = Waiters::default();
        let processor = processing::spawn_processor(
            storage.clone(),
            waiters.clone(),
            deliveries,
            Duration::from_secs(settings.webhooks.creation_timeout_seconds),
            &supervisor,
        );
        let ingress = web::Data::new(Ingress::new(
            settings.webhooks.app_secret.clone(),
            &storage,
            processor,
            &supervisor,
        ));
        let idempotency = web::Data::new(Idempotency::new(
            &storage,
            // The longest a call to Meta may take, and a margin for clocks and commits.
            timeout + Duration::from_secs(5),
        ));
        let ownership = web::Data::new(Ownership::new(
            &storage,
            settings.storage.cache_ttl.0,
            &supervisor,
        ));
        // Warmed before the first request: the hot path needs no storage round trip.
        if let Err(e) = ownership.warm().await {
            tracing::warn!(error = %e, "cannot read the recent groups; they are read when asked for");
        }
        let creations = web::Data::new(Creations::new(
            storage.clone(),
            waiters,
            timeout.max(Duration::from_secs(1)),
        ));
        // A call to Meta takes at most graph.timeout_ms; a margin covers clocks and commits.
        creations.spawn_watchdog(
            timeout + Duration::from_secs(5),
            Duration::from_secs(settings.webhooks.creation_timeout_seconds),
            &supervisor,
        );
        crate::services::retention::spawn(&settings.retention, &storage, &supervisor);
        let feed = web::Data::new(Feed::new(&storage));
        let group_store = storage.groups.clone();
        let storage = web::Data::new(storage);
        let openapi = spec();
        // Sandbox mode (DESIGN §10): the simulated Meta, sending its webhooks to our ingress.
        let sandbox = (settings.graph.mode == GraphMode::Sandbox).then(|| {
            crate::sandbox::SandboxState::new(
                crate::sandbox::SandboxOptions::from_settings(
                    &settings,
                    Some(format!("http://127.0.0.1:{port}/webhooks/whatsapp")),
                )
                .following(directory.clone()),
            )
        });

        let app = move || {
            // awc clients are per worker (not Send); each keeps its own connection pool.
            let graph = GraphClient::new(
                &graph_base,
                &api_version,
                timeout,
                attempt_timeout,
                tokens.clone(),
                number_limits.clone(),
            );
            let groups = web::Data::new(Groups::new(graph.clone(), group_store.clone()));
            App::new()
                .into_utoipa_app()
                .openapi(ApiDoc::openapi())
                .app_data(
                    web::JsonConfig::default()
                        .limit(JSON_LIMIT)
                        .error_handler(error::json_error_handler),
                )
                .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
                .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
                .app_data(web::PayloadConfig::default().limit(JSON_LIMIT))
                .app_data(groups)
                .app_data(web::Data::new(graph))
                .app_data(storage.clone())
                .app_data(authenticator.clone())
                .app_data(team_limits.clone())
                .app_data(readiness.clone())
                .app_data(body_timeout.clone())
                .app_data(anonymous_limits.clone())
                .app_data(ingress_limits.clone())
                .app_data(idempotency.clone())
                .app_data(verify_token.clone())
                .app_data(ingress.clone())
                .app_data(ownership.clone())
                .app_data(creations.clone())
                .app_data(feed.clone())
                .app_data(revocations.clone())
                .app_data(admin.clone())
                .app_data(audit_log.clone())
                .app_data(registry.clone())
                .configure(routes::configure)
                .split_for_parts()
                .0
                // Before the catch-all scope below; outside the OpenAPI document; live: absent.
                .configure(|cfg| {
                    if let Some(sandbox) = &sandbox {
                        cfg.service(sandbox.scope());
                    }
                })
                .service(
                    web::scope("")
                        .service(
                            SwaggerUi::new("/swagger-ui/{_:.*}")
                                .url("/openapi.json", openapi.clone()),
                        )
                        .route(
                            "/swagger-ui",
                            web::get().to(|| async {
                                HttpResponse::PermanentRedirect()
                                    .insert_header((header::LOCATION, "/swagger-ui/"))
                                    .finish()
                            }),
                        ),
                )
                .default_service(web::to(error::not_found))
                .wrap(ErrorHandlers::new().default_handler(as_problem))
                // Inside request_context, whose request id each audit row records.
                .wrap(from_fn(routes::audit::record))
                .wrap(from_fn(request_context))
        };
        let client_request_timeout =
            Duration::from_millis(settings.server.client_request_timeout_ms);
        let mut server =
            actix_server::Server::build().shutdown_timeout(settings.server.shutdown_grace_seconds);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        // What actix-web's HttpServer builds, with each connection's end in sight: the
        // requests actix refuses before routing are seen here, with their client's address.
        let shutdown = server.graceful_shutdown_signal();
        let local = listener.local_addr().map_err(|source| StartupError::Bind {
            address: format!("port {port}"),
            source,
        })?;
        let server = server
            .listen("wa-groups-gateway", listener, move || {
                let shutdown = shutdown.clone();
                let http = HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .client_request_timeout(client_request_timeout)
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(local)
                    // HttpServer's host is the listening address; the default (localhost:8080)
                    // differs only for a request without a Host header (HTTP/1.0).
                    .finish(map_config(app(), |_| AppConfig::default()))
                    .tcp();
                let refused = refused_before_routing.clone();
                apply_fn_factory(http, move |io: TcpStream, connection: &_| {
                    let peer = io.peer_addr().ok().map(|a| a.ip());
                    let served = connection.call(io);
                    let refused = refused.clone();
                    async move {
                        let ended = served.await;
                        if let Err(e) = &ended {
                            refused.note(e, peer);
                        }
                        ended
                    }
                })
            })
            .map_err(|source| StartupError::Bind {
                address: format!("port {port}"),
                source,
            })?;
        Ok(BoundServer::new(port, server.run(), supervisor))
    }
}

fn rate(limit: &RateLimitSettings) -> Rate {
    Rate {
        per_second: limit.per_second,
        burst: limit.burst,
    }
}

/// Errors produced by the framework itself (405, oversized bodies…) become problem+json
/// like every other error.
fn as_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // A JSON error body was written on purpose (a problem, Meta's envelope from the simulated
    // Graph, the readiness report): only the framework's own plain-text errors are replaced.
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v == "application/json" || v.ends_with("+json")
        });
    if is_json || !res.status().is_client_error() && !res.status().is_server_error() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let api = match status.as_u16() {
        404 => ApiError::NotFound("no such route".into()),
        405 => ApiError::NotFound("no such route for this method".into()),
        413 => ApiError::PayloadTooLarge { limit: JSON_LIMIT },
        415 => ApiError::UnsupportedMediaType("unsupported Content-Type".into()),
        s if s < 500 => ApiError::bad_request(
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_owned(),
        ),
        _ => ApiError::Internal(format!("framework error {status}")),
    };
    let mut problem = api.problem();
    problem.status = status.as_u16();
    let (req, _) = res.into_parts();
    let body: BoxBody = BoxBody::new(serde_json::to_vec(&problem).unwrap_or_default());
    let response = HttpResponse::build(status)
        .content_type("application/problem+json")
        .body(body);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
