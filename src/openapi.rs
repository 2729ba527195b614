//! The OpenAPI document: paths come from the handlers' annotations as they are mounted.

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wa-groups-gateway",
        description = "Manage WhatsApp groups on the company's business numbers through Meta's Cloud API, \
            with team tokens instead of WhatsApp access tokens. Every error is application/problem+json. \
            Group creation completes asynchronously: poll the request, or pass wait_seconds.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::domain::FieldError, crate::graph::UpstreamProblem)),
    tags(
        (name = "groups", description = "Create, read, change and delete groups"),
        (name = "invitations", description = "Invite links and invitation templates"),
        (name = "join requests", description = "Approve or reject people asking to join"),
        (name = "messages", description = "Write into a group; what participants write, and the statuses of what the business wrote, arrive as events"),
        (name = "events", description = "The team's group events, also pushed to its webhook (Standard Webhooks)"),
        (name = "admin", description = "The platform team's endpoints (scope admin, honoured only for teams with admin = true): tokens, revocation, audit log, group ownership"),
        (name = "webhooks", description = "Meta's webhook ingress (signed by Meta, not by a team token)"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A team token (`wa-groups-gateway token issue`). Each operation lists the scope it needs.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served at `/openapi.json` (and printed by `wa-groups-gateway openapi`).
pub fn spec() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    api
}
