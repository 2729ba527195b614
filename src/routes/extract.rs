//! What a handler states in its signature: the scope it needs, the resource it acts on and
//! the input it reads. The extractors run the checks in the order README, "API overview", gives:
//! 401 (token, then the team's rate limit), the body's size and type (413, 415, 408), 400
//! with every broken field of path, query and body at once, 403 (scope, then phone-number
//! grant), 404 (a group the team does not own), so a handler cannot skip or reorder them.

use std::collections::hash_map::Entry;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::body::{deadline_of, read_within};
use super::{FieldReader, JSON_LIMIT, JsonObject, QueryMap, finish};
use crate::auth::{Principal, authenticate};
use crate::domain::{FieldErrors, GroupId, PhoneNumberId, Scope};
use crate::error::ApiError;
use crate::services::ownership::Ownership;
use crate::storage::GroupRecord;

/// A scope as a type, so a handler names the one it needs in its signature.
pub trait RequiredScope: 'static {
    const SCOPE: Scope;
    /// The route concerns no single phone number, so a token narrowed by `phone_numbers`
    /// cannot use it (403; README, "Security rules", "Narrowing only narrows").
    const UNNARROWED: bool = false;
}

pub mod scope {
    use super::{RequiredScope, Scope};

    /// `admin` on a token without `phone_numbers`: for what concerns no single number
    /// (revoking tokens, the teams' webhook endpoints).
    pub struct UnnarrowedAdmin;

    impl RequiredScope for UnnarrowedAdmin {
        const SCOPE: Scope = Scope::Admin;
        const UNNARROWED: bool = true;
    }

    macro_rules! scopes {
        ($($name:ident),*) => {$(
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scopes!(
        GroupsRead,
        GroupsWrite,
        GroupsDelete,
        GroupsInvite,
        GroupsMessage,
        Webhooks,
        Admin
    );
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
    /// The query parameters the input reads; any other is refused before `parse` runs.
    const QUERY: &'static [&'static str] = &[];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError>;
}

/// An input that is a JSON object body and nothing else, read field by field; a body that
/// is not declared JSON is a 415 before any field is read.
pub trait JsonInput: Sized + 'static {
    fn read(r: &mut FieldReader<'_>) -> Option<Self>;
}

impl<T: JsonInput> Input for T {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        Ok(T::read(&mut body.reader(errors)))
    }
}

/// No input beyond the path.
pub struct NoInput;

impl Input for NoInput {
    fn parse(_: &Parts<'_>, _: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(Some(NoInput))
    }
}

/// An authenticated caller holding scope `S`, the resource `R` of the path it acts on, and
/// its validated input `I`.
pub struct Call<S, R, I> {
    pub principal: Principal,
    pub resource: R,
    pub input: I,
    scope: PhantomData<S>,
}

/// A route with no resource in its path.
pub type Authorized<S, I> = Call<S, (), I>;
/// A route on `/phone-numbers/{phone_number_id}`: a number the token may use.
pub type Granted<S, I> = Call<S, PhoneNumberId, I>;
/// A route on `/groups/{group_id}`: an active group the caller's team owns, on a number the
/// token may use.
pub type OwnedGroup<S, I> = Call<S, GroupRecord, I>;

impl<S, I> OwnedGroup<S, I> {
    pub fn group(&self) -> &GroupRecord {
        &self.resource
    }
}

impl<S, I> Granted<S, I> {
    pub fn phone_number(&self) -> &PhoneNumberId {
        &self.resource
    }
}

/// What a route's path names, and how it is checked once scope and input are.
pub trait Resource: Sized + 'static {
    /// The path parameter, parsed (recorded as a field error when broken).
    type Parsed;
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Option<Self::Parsed>;
    /// 403 or 404 once the caller is known to hold the scope.
    fn resolve(
        parsed: Self::Parsed,
        principal: &Principal,
        req: &HttpRequest,
    ) -> impl Future<Output = Result<Self, ApiError>>;
}

impl Resource for () {
    type Parsed = ();

    fn parse(_: &Parts<'_>, _: &mut FieldErrors) -> Option<()> {
        Some(())
    }

    async fn resolve(_: (), _: &Principal, _: &HttpRequest) -> Result<(), ApiError> {
        Ok(())
    }
}

impl Resource for PhoneNumberId {
    type Parsed = PhoneNumberId;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Option<PhoneNumberId> {
        let raw = parts.path("phone_number_id").unwrap_or_default();
        errors.check("phone_number_id", PhoneNumberId::parse(raw))
    }

    async fn resolve(
        pn: PhoneNumberId,
        principal: &Principal,
        _: &HttpRequest,
    ) -> Result<PhoneNumberId, ApiError> {
        principal.require_number(&pn)?;
        Ok(pn)
    }
}

impl Resource for GroupRecord {
    type Parsed = GroupId;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Option<GroupId> {
        errors.check(
            "group_id",
            GroupId::parse(parts.path("group_id").unwrap_or_default()),
        )
    }

    async fn resolve(
        group_id: GroupId,
        principal: &Principal,
        req: &HttpRequest,
    ) -> Result<GroupRecord, ApiError> {
        let ownership = req
            .app_data::<web::Data<Ownership>>()
            .ok_or_else(|| ApiError::Internal("ownership missing".into()))?;
        let group = ownership.owned_by(&principal.team, &group_id).await?;
        principal.require_number(&group.phone_number_id)?;
        Ok(group)
    }
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// Authenticates, reads and validates, checks the scope, then the resource.
async fn extract<S: RequiredScope, R: Resource, I: Input>(
    req: HttpRequest,
    mut payload: Payload,
) -> Result<Call<S, R, I>, ApiError> {
    let principal = authenticate(&req).await?;
    let body = match I::BODY {
        BodyKind::None => Bytes::new(),
        BodyKind::Json => read_json_body(&req, payload.take()).await?,
        BodyKind::Picture => Bytes::from(super::picture::read_picture(&req, payload.take()).await?),
    };
    let mut errors = FieldErrors::new();
    let query = query_of(&req, I::QUERY, &mut errors)?;
    let parts = Parts {
        req: &req,
        query,
        body,
    };
    let parsed = R::parse(&parts, &mut errors);
    let input = I::parse(&parts, &mut errors)?;
    finish(errors)?;
    let (parsed, input) = parsed.zip(input).ok_or_else(missing)?;
    principal.require(S::SCOPE)?;
    if S::UNNARROWED {
        principal.require_unnarrowed()?;
    }
    let resource = R::resolve(parsed, &principal, &req).await?;
    Ok(Call {
        principal,
        resource,
        input,
        scope: PhantomData,
    })
}

/// The query parameters, each once and each one of `known` (README, "Security rules",
/// "Input"): an unknown one is most often a typo whose intent would be silently dropped, and
/// a repeated one would leave the gateway and whatever reads the URL after it to pick
/// different values.
fn query_of(
    req: &HttpRequest,
    known: &[&str],
    errors: &mut FieldErrors,
) -> Result<QueryMap, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
        .into_inner();
    let mut query = QueryMap::with_capacity(pairs.len());
    // Names already reported, so a name sent three times is listed once.
    let mut refused: Vec<String> = Vec::new();
    for (name, value) in pairs {
        if refused.contains(&name) {
            continue;
        }
        if !known.contains(&name.as_str()) {
            errors.push(name.as_str(), "is not a query parameter of this route");
            refused.push(name);
            continue;
        }
        match query.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(first) => {
                errors.push(first.key().as_str(), "must be given at most once");
                refused.push(first.key().clone());
            }
        }
    }
    Ok(query)
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

impl<S: RequiredScope, R: Resource, I: Input> FromRequest for Call<S, R, I> {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        Box::pin(extract(req.clone(), payload.take()))
    }
}
