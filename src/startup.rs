//! Builds the application from settings: storage, workers, routes, Swagger UI.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{Service, ServiceFactory, apply_fn_factory, map_config};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::dev::{AppConfig, ServiceRequest};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpResponse, Scope, web};
use secrecy::ExposeSecret;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{Authenticator, KeyError, TeamLimits, TokenIssuer};
use crate::config::{
    GraphMode, RateLimitSettings, RateLimitStore, RateLimitStoreSettings, ServerSettings, Settings,
};
use crate::connection::RefusedBeforeRouting;
use crate::error::{self, ApiError};
use crate::graph::{Backoffs, GraphClient, NumberLimits, TokenStore};
use crate::openapi::{ApiDoc, spec};
use crate::platform::{Directory, LiveLimiter};
use crate::process::BoundServer;
use crate::ratelimit::{AddressBuckets, Rate, RedisStore};
use crate::routes::admin::AdminContext;
use crate::routes::body::{BodyBudget, BodyTimeout};
use crate::routes::health::Dependencies;
use crate::routes::idempotency::Idempotency;
use crate::routes::webhooks::{IngressLimits, VerifyToken};
use crate::routes::{self, JSON_LIMIT};
use crate::sandbox::{SandboxOptions, SandboxState};
use crate::services::audit::AuditLog;
use crate::services::creation::{Creations, Waiters};
use crate::services::events::Feed;
use crate::services::groups::Groups;
use crate::services::ownership::Ownership;
use crate::services::processing::{self, Ingress};
use crate::services::registry::{Registry, RegistryError};
use crate::services::revocation::{self, RevocationList};
use crate::storage::{GroupStore, Storage, StorageError};
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
        let storage = open_storage(&settings).await?;
        // Every background task of this gateway runs under it; /readyz reports its state.
        let supervisor = Supervisor::default();
        // The teams and numbers in force, configuration's and the admin API's (README,
        // "Runtime management").
        let registry = Registry::start(
            Directory::from_settings(&settings),
            &storage,
            settings.encryption.keys.clone(),
            settings.storage.cache_ttl.0,
        )
        .await?;
        registry.follow(&storage, &supervisor);
        let directory = registry.directory().clone();
        let (listener, port) = bind(&settings.server)?;
        crate::metrics::install();
        // With `store = "redis"`, every replica draws from the same buckets.
        let shared_buckets = shared_buckets(&settings.rate_limit)?;
        let upstream = Upstream::new(
            &settings,
            port,
            shared_buckets.clone(),
            &directory,
            &storage,
        );
        let (guards, refused_before_routing) =
            Guards::new(&settings, shared_buckets, &supervisor, &directory);
        let access = Access::load(&settings, &storage, &supervisor, registry).await?;
        let services = Services::start(&settings, storage, &supervisor, &directory).await;
        spawn_reconciliation(
            &settings,
            &upstream,
            &directory,
            &services.storage,
            &supervisor,
        );
        let shared = Shared {
            upstream,
            guards,
            access,
            services,
            openapi: spec(),
            sandbox: sandbox(&settings, port, &directory),
        };
        let server = serve(
            listener,
            port,
            &settings.server,
            shared,
            refused_before_routing,
        )?;
        Ok(BoundServer::new(port, server.run(), supervisor))
    }
}

fn storage_error(settings: &Settings) -> impl FnOnce(StorageError) -> StartupError + '_ {
    |source| StartupError::Storage {
        url: settings.storage.url.to_string(),
        source,
    }
}

async fn open_storage(settings: &Settings) -> Result<Storage, StartupError> {
    Storage::connect(
        settings.storage.url.expose_secret(),
        settings.storage.max_connections,
    )
    .await
    .map_err(storage_error(settings))
}

/// The listening socket and its port (the one picked when `server.port` is 0).
fn bind(server: &ServerSettings) -> Result<(TcpListener, u16), StartupError> {
    let address = format!("{}:{}", server.host, server.port);
    let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
        address: address.clone(),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { address, source })?
        .port();
    Ok((listener, port))
}

/// The Redis store of `[rate_limit]`, when buckets are shared by the fleet.
fn shared_buckets(
    settings: &RateLimitStoreSettings,
) -> Result<Option<Arc<RedisStore>>, StartupError> {
    match settings.store {
        RateLimitStore::Local => Ok(None),
        RateLimitStore::Redis => RedisStore::new(
            settings
                .redis_url
                .as_ref()
                .map(ExposeSecret::expose_secret)
                .unwrap_or_default(),
        )
        .map(Some)
        .map_err(StartupError::RateLimitStore),
    }
}

/// How each worker reaches Meta: awc clients are not `Send`, so every worker builds its own
/// `GraphClient` from this.
#[derive(Clone)]
struct Upstream {
    base: String,
    api_version: String,
    timeout: Duration,
    attempt_timeout: Duration,
    tokens: TokenStore,
    number_limits: NumberLimits,
    backoffs: Backoffs,
}

impl Upstream {
    fn new(
        settings: &Settings,
        port: u16,
        shared: Option<Arc<RedisStore>>,
        directory: &Directory,
        storage: &Storage,
    ) -> Self {
        // Meta's 131208 holds a number's group operations back on every replica: in Redis
        // with the shared buckets, else in storage.
        let backoffs = Backoffs::new(shared.clone(), storage.backoffs.clone());
        let base = match settings.graph.mode {
            GraphMode::Live => settings.graph.base_url.clone(),
            // The gateway talks to its own simulation over HTTP, through the same client code.
            GraphMode::Sandbox => format!("http://127.0.0.1:{port}/sandbox/graph"),
        };
        // A number's limit follows the registry: changed through the API, in force at once.
        let number_limits = Arc::new(LiveLimiter::new("phone_number", shared, {
            let directory = directory.clone();
            move |pn| directory.number_rate(pn)
        }));
        Upstream {
            base,
            api_version: settings.graph.api_version.clone(),
            timeout: Duration::from_millis(settings.graph.timeout_ms),
            attempt_timeout: Duration::from_millis(settings.graph.attempt_timeout_ms),
            tokens: directory.clone(),
            number_limits,
            backoffs,
        }
    }

    /// One per worker; each keeps its own connection pool.
    fn client(&self) -> GraphClient {
        GraphClient::new(
            &self.base,
            &self.api_version,
            self.timeout,
            self.attempt_timeout,
            self.tokens.clone(),
            self.number_limits.clone(),
            self.backoffs.clone(),
        )
    }
}

/// What requests are measured against before a handler runs: limits, budgets, readiness.
#[derive(Clone)]
struct Guards {
    team_limits: web::Data<TeamLimits>,
    readiness: web::Data<Dependencies>,
    body_timeout: web::Data<BodyTimeout>,
    anonymous_limits: web::Data<AddressBuckets>,
    ingress_limits: web::Data<IngressLimits>,
}

impl Guards {
    /// Also what sees the requests refused before routing, charged to the same addresses.
    fn new(
        settings: &Settings,
        shared: Option<Arc<RedisStore>>,
        supervisor: &Supervisor,
        directory: &Directory,
    ) -> (Self, RefusedBeforeRouting) {
        let team_limits = web::Data::new(LiveLimiter::new("team", shared.clone(), {
            let directory = directory.clone();
            move |team| directory.team_rate(team)
        }));
        let readiness = web::Data::new(Dependencies {
            rate_limit_store: shared,
            tasks: supervisor.clone(),
        });
        let body_timeout = web::Data::new(BodyTimeout(Duration::from_millis(
            settings.server.body_timeout_ms,
        )));
        let anonymous_limits = Arc::new(AddressBuckets::new(rate(
            &settings.server.anonymous_rate_limit,
        )));
        let refused_before_routing = RefusedBeforeRouting::new(anonymous_limits.clone());
        let ingress_limits = web::Data::new(IngressLimits {
            max_body: settings.webhooks.max_body_bytes,
            budget: BodyBudget::new(settings.webhooks.max_in_flight_bytes),
        });
        let guards = Guards {
            team_limits,
            readiness,
            body_timeout,
            anonymous_limits: web::Data::from(anonymous_limits),
            ingress_limits,
        };
        (guards, refused_before_routing)
    }
}

/// Who may call: keys, revoked tokens, the administrators' context and their audit log.
#[derive(Clone)]
struct Access {
    authenticator: web::Data<Authenticator>,
    revocations: web::Data<RevocationList>,
    admin: web::Data<AdminContext>,
    audit_log: web::Data<AuditLog>,
    registry: web::Data<Registry>,
}

impl Access {
    async fn load(
        settings: &Settings,
        storage: &Storage,
        supervisor: &Supervisor,
        registry: Registry,
    ) -> Result<Self, StartupError> {
        let teams = registry.directory().clone();
        // Revoked tokens are refused from the first request on; other replicas' revocations
        // arrive with the background refresh.
        let revocations = RevocationList::load(storage.tokens.clone())
            .await
            .map_err(storage_error(settings))?;
        revocations.spawn_refresher(revocation::REFRESH_EVERY, supervisor);
        let authenticator = web::Data::new(
            Authenticator::new(&settings.auth, teams.clone())?
                .with_revocations(revocations.clone()),
        );
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
        Ok(Access {
            authenticator,
            revocations: web::Data::new(revocations),
            admin,
            audit_log: web::Data::new(AuditLog::new(storage.audit.clone())),
            registry: web::Data::new(registry),
        })
    }
}

/// The use cases, with the background work they own started.
#[derive(Clone)]
struct Services {
    storage: web::Data<Storage>,
    group_store: Arc<dyn GroupStore>,
    verify_token: web::Data<VerifyToken>,
    ingress: web::Data<Ingress>,
    idempotency: web::Data<Idempotency>,
    ownership: web::Data<Ownership>,
    creations: web::Data<Creations>,
    feed: web::Data<Feed>,
    endpoints: web::Data<crate::services::endpoints::Endpoints>,
}

impl Services {
    /// Webhook ingress → processor → deliveries, the creation watchdog, retention, and the
    /// ownership cache, warmed before the first request.
    async fn start(
        settings: &Settings,
        storage: Storage,
        supervisor: &Supervisor,
        directory: &Directory,
    ) -> Self {
        let timeout = Duration::from_millis(settings.graph.timeout_ms);
        let creation_timeout = Duration::from_secs(settings.webhooks.creation_timeout_seconds);
        // Before the first event is processed: configuration's endpoints get its deliveries.
        if let Err(e) =
            crate::services::delivery::sync_config_endpoints(&storage, &settings.teams).await
        {
            tracing::error!(error = %e, "configuration's webhook endpoints could not be recorded; their teams' events are in the feed but not pushed until the next start");
        }
        let deliveries = crate::services::delivery::spawn(
            crate::services::delivery::DeliveryConfig::new(
                &settings.delivery,
                &settings.webhooks,
                &settings.teams,
                settings.encryption.keys.clone(),
            ),
            &storage,
            supervisor,
        );
        let endpoints = web::Data::new(crate::services::endpoints::Endpoints::new(
            &storage,
            settings.encryption.keys.clone(),
            settings.webhooks.secret_overlap,
            deliveries.clone(),
        ));
        let waiters = Waiters::default();
        let processor = processing::spawn_processor(
            storage.clone(),
            waiters.clone(),
            deliveries,
            creation_timeout,
            supervisor,
        );
        let ingress = web::Data::new(Ingress::new(
            settings.webhooks.app_secret.clone(),
            &storage,
            processor,
            supervisor,
        ));
        let idempotency = web::Data::new(Idempotency::new(
            &storage,
            // The longest a call to Meta may take, and a margin for clocks and commits.
            timeout + Duration::from_secs(5),
        ));
        let ownership = web::Data::new(Ownership::new(
            &storage,
            settings.storage.cache_ttl.0,
            supervisor,
        ));
        // Warmed before the first request: the hot path needs no storage round trip.
        if let Err(e) = ownership.warm().await {
            tracing::warn!(error = %e, "cannot read the recent groups; they are read when asked for");
        }
        let creations = web::Data::new(Creations::new(
            storage.clone(),
            waiters,
            timeout.max(Duration::from_secs(1)),
            directory.clone(),
        ));
        // A call to Meta takes at most graph.timeout_ms; a margin covers clocks and commits.
        creations.spawn_watchdog(
            timeout + Duration::from_secs(5),
            creation_timeout,
            supervisor,
        );
        crate::services::retention::spawn(
            &settings.retention,
            // Every token a revocation refuses has expired by then (tokens live at most
            // auth.max_token_ttl_seconds, give or take the leeway).
            Duration::from_secs(
                settings.auth.max_token_ttl_seconds + 2 * settings.auth.leeway_seconds,
            ),
            &storage,
            supervisor,
        );
        Services {
            endpoints,
            feed: web::Data::new(Feed::new(&storage)),
            group_store: storage.groups.clone(),
            verify_token: web::Data::new(VerifyToken(settings.webhooks.verify_token.clone())),
            storage: web::Data::new(storage),
            ingress,
            idempotency,
            ownership,
            creations,
        }
    }
}

/// The periodic reconciliation (DESIGN §15) on a thread of its own: its Graph client (awc)
/// cannot move between threads. Every replica runs it; the lease lets one at a time work.
fn spawn_reconciliation(
    settings: &Settings,
    upstream: &Upstream,
    directory: &Directory,
    storage: &Storage,
    supervisor: &Supervisor,
) {
    let (upstream, directory, supervisor) =
        (upstream.clone(), directory.clone(), supervisor.clone());
    let reconciler = crate::services::reconcile::Reconciler::new(storage.clone());
    let interval = settings.graph.reconcile_interval.0;
    let spawned = std::thread::Builder::new()
        .name("reconcile".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                supervisor
                    .run_local("reconcile", || {
                        let (reconciler, directory) = (reconciler.clone(), directory.clone());
                        let graph = upstream.client();
                        async move { reconciler.run_every(graph, directory, interval).await }
                    })
                    .await
            })
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the periodic reconciliation");
    }
}

/// Sandbox mode (README, "Sandbox"): the simulated Meta, sending its webhooks to our ingress.
fn sandbox(settings: &Settings, port: u16, directory: &Directory) -> Option<SandboxState> {
    (settings.graph.mode == GraphMode::Sandbox).then(|| {
        SandboxState::new(
            SandboxOptions::from_settings(
                settings,
                Some(format!("http://127.0.0.1:{port}/webhooks/whatsapp")),
            )
            .following(directory.clone()),
        )
    })
}

/// Everything the workers' apps share; each worker clones it and builds its own app.
#[derive(Clone)]
struct Shared {
    upstream: Upstream,
    guards: Guards,
    access: Access,
    services: Services,
    openapi: utoipa::openapi::OpenApi,
    sandbox: Option<SandboxState>,
}

impl Shared {
    /// One worker's app: the documented routes, the sandbox when on, Swagger UI, the console
    /// and the middleware every request passes.
    fn app(
        &self,
    ) -> App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody + use<>>,
            Error = actix_web::Error,
            InitError = (),
        > + use<>,
    > {
        self.with_data(App::new())
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(routes::configure)
            .split_for_parts()
            .0
            // Before the catch-all scope below; outside the OpenAPI document; live: absent.
            .configure(|cfg| {
                if let Some(sandbox) = &self.sandbox {
                    cfg.service(sandbox.scope());
                }
            })
            // Before Swagger UI's scope, which takes every path it is given.
            .service(crate::console::scope())
            .service(swagger_ui(self.openapi.clone()))
            .default_service(web::to(error::not_found))
            .wrap(ErrorHandlers::new().default_handler(as_problem))
            // Inside request_context, whose request id each audit row records.
            .wrap(from_fn(routes::audit::record))
            .wrap(from_fn(request_context))
    }

    /// The extractors' configuration and what the handlers are given.
    fn with_data<T>(&self, app: App<T>) -> App<T>
    where
        T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
    {
        let graph = self.upstream.client();
        let groups = Groups::new(graph.clone(), self.services.group_store.clone());
        let (guards, access, services) = (&self.guards, &self.access, &self.services);
        app.app_data(
            web::JsonConfig::default()
                .limit(JSON_LIMIT)
                .error_handler(error::json_error_handler),
        )
        .app_data(web::QueryConfig::default().error_handler(error::query_error_handler))
        .app_data(web::PathConfig::default().error_handler(error::path_error_handler))
        .app_data(web::PayloadConfig::default().limit(JSON_LIMIT))
        .app_data(web::Data::new(groups))
        .app_data(web::Data::new(graph))
        .app_data(services.storage.clone())
        .app_data(access.authenticator.clone())
        .app_data(guards.team_limits.clone())
        .app_data(guards.readiness.clone())
        .app_data(guards.body_timeout.clone())
        .app_data(guards.anonymous_limits.clone())
        .app_data(guards.ingress_limits.clone())
        .app_data(services.idempotency.clone())
        .app_data(services.verify_token.clone())
        .app_data(services.ingress.clone())
        .app_data(services.ownership.clone())
        .app_data(services.creations.clone())
        .app_data(services.feed.clone())
        .app_data(services.endpoints.clone())
        .app_data(access.revocations.clone())
        .app_data(access.admin.clone())
        .app_data(access.audit_log.clone())
        .app_data(access.registry.clone())
    }
}

/// Swagger UI on the served document, and `/swagger-ui` redirected to it.
fn swagger_ui(openapi: utoipa::openapi::OpenApi) -> Scope {
    web::scope("")
        .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/openapi.json", openapi))
        .route(
            "/swagger-ui",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header((header::LOCATION, "/swagger-ui/"))
                    .finish()
            }),
        )
}

/// What actix-web's HttpServer builds, with each connection's end in sight: the requests
/// actix refuses before routing are seen here, with their client's address.
fn serve(
    listener: TcpListener,
    port: u16,
    settings: &ServerSettings,
    shared: Shared,
    refused_before_routing: RefusedBeforeRouting,
) -> Result<actix_server::ServerBuilder, StartupError> {
    let bind_error = |source| StartupError::Bind {
        address: format!("port {port}"),
        source,
    };
    let client_request_timeout = Duration::from_millis(settings.client_request_timeout_ms);
    let mut server =
        actix_server::Server::build().shutdown_timeout(settings.shutdown_grace_seconds);
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    let shutdown = server.graceful_shutdown_signal();
    let local = listener.local_addr().map_err(bind_error)?;
    server
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
                .finish(map_config(shared.app(), |_| AppConfig::default()))
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
        .map_err(bind_error)
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
