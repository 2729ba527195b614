//! What a handler states in its signature: the scope it needs, the resource it acts on and
//! the input it reads. The extractors run the checks in the documented order (DESIGN §4):
//! 401 (token, then the team's rate limit), the body's size and type (413, 415, 408), 400
//! with every broken field of path, query and body at once, 403 (scope, then phone-number
//! grant), 404 (a group the team does not own), so a handler cannot skip or reorder them.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::body::{deadline_of, read_within};
use super::{JSON_LIMIT, QueryMap, finish};
use crate::auth::{Principal, authenticate};
use crate::domain::{FieldErrors, GroupId, PhoneNumberId, Scope};
use crate::error::ApiError;
use crate::services::ownership::Ownership;
use crate::storage::GroupRecord;

/// A scope as a type, so a handler names the one it needs in its signature.
pub trait RequiredScope: 'static {
    const SCOPE: Scope;
}

pub mod scope {
    use super::{RequiredScope, Scope};

    macro_rules! scopes {
        ($($name:ident),*) => {$(
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scopes!(GroupsRead, GroupsWrite, GroupsDelete, GroupsInvite, Admin);
}

/// How an input's body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// The body is not read.
    None,
    /// At most `JSON_LIMIT` bytes.
    Json,
    /// A JPEG, raw or as multipart part `file` (`picture::read_picture`).
    Picture,
}

/// The request as an input sees it: path, query, headers and the body's bytes.
pub struct Parts<'a> {
    pub req: &'a HttpRequest,
    pub query: QueryMap,
    pub body: Bytes,
}

impl Parts<'_> {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn path(&self, name: &str) -> Option<&str> {
        self.req.match_info().get(name)
    }
}

/// A validated input: parsed from the request, every broken field recorded in `errors`.
/// `None` is allowed only when an error was recorded.
pub trait Input: Sized + 'static {
    const BODY: BodyKind = BodyKind::None;
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError>;
}

/// No input beyond the path.
pub struct NoInput;

impl Input for NoInput {
    fn parse(_: &Parts<'_>, _: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(Some(NoInput))
    }
}

/// An authenticated caller holding scope `S`, with its validated input.
pub struct Authorized<S, I> {
    pub principal: Principal,
    pub input: I,
    scope: PhantomData<S>,
}

/// As `Authorized`, for a phone number in the path that the token may use.
pub struct Granted<S, I> {
    pub principal: Principal,
    pub phone_number: PhoneNumberId,
    pub input: I,
    scope: PhantomData<S>,
}

/// As `Authorized`, for an active group in the path that the caller's team owns, on a number
/// the token may use.
pub struct OwnedGroup<S, I> {
    pub principal: Principal,
    pub group: GroupRecord,
    pub input: I,
    scope: PhantomData<S>,
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The path parameter a family of routes acts on.
enum Resource {
    None,
    PhoneNumber,
    Group,
}

/// Authenticates, reads and validates, checks the scope; answers the parsed path resource.
async fn extract<S: RequiredScope, I: Input>(
    req: HttpRequest,
    mut payload: Payload,
    resource: Resource,
) -> Result<(Principal, Option<String>, I), ApiError> {
    let principal = authenticate(&req)?;
    let body = match I::BODY {
        BodyKind::None => Bytes::new(),
        BodyKind::Json => read_json_body(&req, payload.take()).await?,
        BodyKind::Picture => Bytes::from(super::picture::read_picture(&req, payload.take()).await?),
    };
    let query = web::Query::<QueryMap>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
        .into_inner();
    let parts = Parts {
        req: &req,
        query,
        body,
    };
    let mut errors = FieldErrors::new();
    let resource = match resource {
        Resource::None => None,
        Resource::PhoneNumber => errors
            .check(
                "phone_number_id",
                PhoneNumberId::parse(parts.path("phone_number_id").unwrap_or_default()),
            )
            .map(String::from),
        Resource::Group => errors
            .check(
                "group_id",
                GroupId::parse(parts.path("group_id").unwrap_or_default()),
            )
            .map(String::from),
    };
    let input = I::parse(&parts, &mut errors)?;
    finish(errors)?;
    let input = input.ok_or_else(missing)?;
    principal.require(S::SCOPE)?;
    Ok((principal, resource, input))
}

/// Every `None` left after `finish` means an error was recorded: reaching here is a bug.
fn missing() -> ApiError {
    ApiError::Internal("validated input missing".into())
}

async fn read_json_body(req: &HttpRequest, payload: Payload) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > JSON_LIMIT) {
        return Err(ApiError::PayloadTooLarge { limit: JSON_LIMIT });
    }
    read_within(payload, JSON_LIMIT, deadline_of(req)).await
}

impl<S: RequiredScope, I: Input> FromRequest for Authorized<S, I> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let (principal, _, input) = extract::<S, I>(req, payload, Resource::None).await?;
            Ok(Authorized {
                principal,
                input,
                scope: PhantomData,
            })
        })
    }
}

impl<S: RequiredScope, I: Input> FromRequest for Granted<S, I> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let (principal, pn, input) =
                extract::<S, I>(req, payload, Resource::PhoneNumber).await?;
            let phone_number =
                PhoneNumberId::parse(&pn.ok_or_else(missing)?).map_err(|_| missing())?;
            principal.require_number(&phone_number)?;
            Ok(Granted {
                principal,
                phone_number,
                input,
                scope: PhantomData,
            })
        })
    }
}

impl<S: RequiredScope, I: Input> FromRequest for OwnedGroup<S, I> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let ownership = req.app_data::<web::Data<Ownership>>().cloned();
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let (principal, group_id, input) =
                extract::<S, I>(req, payload, Resource::Group).await?;
            let group_id = GroupId::parse(&group_id.ok_or_else(missing)?).map_err(|_| missing())?;
            let ownership =
                ownership.ok_or_else(|| ApiError::Internal("ownership missing".into()))?;
            let group = ownership.owned_by(&principal.team, &group_id).await?;
            principal.require_number(&group.phone_number_id)?;
            Ok(OwnedGroup {
                principal,
                group,
                input,
                scope: PhantomData,
            })
        })
    }
}
