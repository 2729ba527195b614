//! The parameters of the routes, documented once (as `responses` does for error statuses),
//! so that one description serves every operation that takes the parameter. Only the OpenAPI
//! document reads these types: `extract` and each route's `Input` parse the request, and
//! report every broken parameter by name. Each schema comes from the domain rule that parses
//! the parameter, so the document states what is enforced.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Required};
use utoipa::{IntoParams, PartialSchema};

use crate::domain::{
    GroupField, GroupId, META_CURSOR, PageLimit, PhoneNumberId, RequestId, TokenId, WaitSeconds,
    cursor_schema,
};

/// Characters of the audit log's `team` filter.
pub(crate) const AUDIT_TEAM_CHARS: std::ops::RangeInclusive<usize> = 1..=128;

/// One parameter: `required` in `location`, its `schema` and what it means.
fn param(
    name: &str,
    location: ParameterIn,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> ParameterBuilder {
    let required = match location {
        ParameterIn::Path => Required::True,
        _ => Required::False,
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
}

fn limit(limit: PageLimit) -> Parameter {
    let description = format!(
        "Page size, {}–{}, default {}",
        limit.min, limit.max, limit.default
    );
    param("limit", ParameterIn::Query, &description, limit.schema()).build()
}

/// Declares `$name` documenting the parameters `$params` (an expression of `Vec<Parameter>`).
macro_rules! params {
    ($(#[$doc:meta])* $name:ident => $params:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                $params
            }
        }
    };
}

params!(
    /// `{group_id}` in the path.
    GroupPath => vec![param("group_id", ParameterIn::Path, "Group ID", GroupId::schema()).build()]
);

params!(
    /// `{phone_number_id}` in the path.
    PhoneNumberPath => vec![
        param(
            "phone_number_id",
            ParameterIn::Path,
            "Business phone number ID",
            PhoneNumberId::schema(),
        )
        .example(Some("12784358810".into()))
        .build(),
    ]
);

params!(
    /// `{request_id}` in the path.
    RequestIdPath => vec![
        param(
            "request_id",
            ParameterIn::Path,
            "The id answered by create_group",
            RequestId::schema(),
        )
        .build(),
    ]
);

params!(
    /// `{jti}` in the path: a token's id.
    TokenIdPath => vec![
        param(
            "jti",
            ParameterIn::Path,
            "The token's `jti` claim: 1-128 characters of `A-Z a-z 0-9 . _ ~ -`",
            TokenId::schema(),
        )
        .example(Some("0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f".into()))
        .build(),
    ]
);

params!(
    /// `wait_seconds` of a creation.
    WaitParam => vec![
        param(
            "wait_seconds",
            ParameterIn::Query,
            "Hold the answer until the creation completes, at most this many seconds",
            WaitSeconds::schema(),
        )
        .build(),
    ]
);

params!(
    /// `fields` of a group read: a comma list of known fields, at least one.
    FieldsParam => vec![
        param(
            "fields",
            ParameterIn::Query,
            "The group's fields to read (comma-separated); absent = all of them",
            ArrayBuilder::new()
                .items(GroupField::schema())
                .min_items(Some(1))
                .build(),
        )
        .style(Some(ParameterStyle::Form))
        .explode(Some(false))
        .example(Some(serde_json::json!(["subject", "participants"])))
        .build(),
    ]
);

params!(
    /// The registry's listing, paged both ways by its opaque cursors.
    CursorPaging => vec![
        limit(PageLimit::LISTING),
        param("after", ParameterIn::Query, "Cursor from `paging.after`", cursor_schema()).build(),
        param("before", ParameterIn::Query, "Cursor from `paging.before` (not with `after`)", cursor_schema()).build(),
    ]
);

params!(
    /// A listing of Meta's, paged both ways by Meta's cursors passed on.
    MetaPaging => vec![
        limit(PageLimit::LISTING),
        param("after", ParameterIn::Query, "Cursor from `paging.after`", META_CURSOR.schema()).build(),
        param("before", ParameterIn::Query, "Cursor from `paging.before` (not with `after`)", META_CURSOR.schema()).build(),
    ]
);

params!(
    /// A log read forwards from a cursor (the audit log, the unowned events).
    LogPaging => vec![
        param("after", ParameterIn::Query, "Cursor from `paging.after`", cursor_schema()).build(),
        limit(PageLimit::LOG),
    ]
);

params!(
    /// The team's events feed: from a cursor, or after an event the consumer handled.
    FeedPaging => vec![
        limit(PageLimit::LOG),
        param(
            "after",
            ParameterIn::Query,
            "`paging.after` of the previous page, or the `id` of the last event already handled",
            ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).build(),
        )
        .build(),
    ]
);

params!(
    /// The audit log's filters.
    AuditFilters => vec![
        param(
            "team",
            ParameterIn::Query,
            "Only calls made by this team",
            crate::domain::string_schema(AUDIT_TEAM_CHARS, None),
        )
        .build(),
        param(
            "group_id",
            ParameterIn::Query,
            "Only calls about this group, including the creation that produced it",
            GroupId::schema(),
        )
        .build(),
        param(
            "since",
            ParameterIn::Query,
            "Only calls at or after this instant (RFC 3339)",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .example(Some("2026-11-26T00:00:00Z".into()))
        .build(),
    ]
);
