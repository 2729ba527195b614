//! The OpenAPI document: paths come from the handlers' annotations as they are mounted.

use actix_web::App;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
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
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::domain::FieldError, crate::graph::UpstreamProblem)),
    tags(
        (name = "groups", description = "Create, read, change and delete groups"),
        (name = "invitations", description = "Invite links and invitation templates"),
        (name = "join requests", description = "Approve or reject people asking to join"),
        (name = "messages", description = "Write into a group; what participants write, and the statuses of what the business wrote, arrive as events"),
        (name = "events", description = "The team's group events, also pushed to its webhook endpoints (Standard Webhooks)"),
        (name = "webhook-endpoints", description = "The team's own webhook endpoints (scope webhooks): event-type filters, health, attempts log, replay, secret rotation"),
        (name = "usage", description = "Billable messages per day, phone number and category, from Meta's pricing"),
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
    let mut api = api;
    link_creations_to_groups(&mut api);
    api
}

/// The group routes, a creation's poll and its answer: OpenAPI links from a creation's
/// answers to its poll (by `request_id`), and from a finished creation to every route of the
/// group it made (by `group_id`), so that a client or a stateful test tool can follow a group
/// from its creation. The group routes are read from the document itself, so a new one is
/// linked without being listed here.
fn link_creations_to_groups(api: &mut utoipa::openapi::OpenApi) {
    let group_operations: Vec<String> = api
        .paths
        .paths
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/groups/{group_id}"))
        .flat_map(|(_, item)| operations(item))
        .filter_map(|operation| operation.operation_id.clone())
        .collect();
    let poll = link_to("get_group_request")
        .parameter("request_id", "$response.body#/request_id")
        .description("Poll the creation")
        .build();
    let to_group = |operation_id: &str| {
        link_to(operation_id)
            .parameter("group_id", "$response.body#/group_id")
            .description("The group made, once `status` is `created`")
            .build()
    };
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            // (status, links to the poll, links to the group): a pending creation (202) has
            // no group yet.
            let answers: &[(&str, bool, bool)] = match operation.operation_id.as_deref() {
                Some("create_group") => &[("201", true, true), ("202", true, false)],
                Some("get_group_request") => &[("200", false, true)],
                _ => continue,
            };
            for &(status, to_poll, to_groups) in answers {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) else {
                    continue;
                };
                if to_poll {
                    response
                        .links
                        .insert("get_group_request".into(), poll.clone().into());
                }
                for target in group_operations.iter().filter(|_| to_groups) {
                    response
                        .links
                        .insert(target.clone(), to_group(target).into());
                }
            }
        }
    }
}

/// A link to the operation `operation_id`. utoipa 5.5 writes `Link::operation_id` as
/// `operation_id`, which OpenAPI does not know: the key is written as `operationId` through
/// the link's (flattened) extensions instead.
fn link_to(operation_id: &str) -> LinkBuilder {
    let mut key = Extensions::default();
    key.insert("operationId".into(), operation_id.into());
    LinkBuilder::new().extensions(Some(key))
}

fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [
        &item.get,
        &item.put,
        &item.post,
        &item.delete,
        &item.options,
        &item.head,
        &item.patch,
        &item.trace,
    ]
    .into_iter()
    .flatten()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}
