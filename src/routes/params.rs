//! The parameters several routes share, documented once (as `responses` does for error
//! statuses), so that one description serves every operation that takes the parameter.
//! Only the OpenAPI document reads these types: `extract` and each route's `Input` parse
//! the request, and report every broken parameter by name.

use utoipa::IntoParams;

/// `{group_id}` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct GroupPath {
    /// Group ID
    group_id: String,
}

/// `{phone_number_id}` in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PhoneNumberPath {
    /// Business phone number ID (1–32 digits)
    #[param(example = "12784358810")]
    phone_number_id: String,
}

/// A listing paged both ways by opaque cursors (the registry's, or Meta's passed on).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CursorPaging {
    /// 1–1024, default 25
    #[param(minimum = 1, maximum = 1024)]
    limit: Option<u32>,
    /// Cursor from `paging.after`
    after: Option<String>,
    /// Cursor from `paging.before`
    before: Option<String>,
}

/// A log read forwards from a cursor (the audit log, the unowned events).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogPaging {
    /// Cursor from `paging.after`
    after: Option<String>,
    /// 1–1000, default 100
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}
