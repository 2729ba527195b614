//! What a token may do: scopes with fixed string forms (README, "Authentication").

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    GroupsRead,
    GroupsWrite,
    GroupsDelete,
    GroupsInvite,
    GroupsMessage,
    /// Manages the team's own webhook endpoints.
    Webhooks,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::GroupsRead,
        Scope::GroupsWrite,
        Scope::GroupsDelete,
        Scope::GroupsInvite,
        Scope::GroupsMessage,
        Scope::Webhooks,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::GroupsRead => "groups:read",
            Scope::GroupsWrite => "groups:write",
            Scope::GroupsDelete => "groups:delete",
            Scope::GroupsInvite => "groups:invite",
            Scope::GroupsMessage => "groups:message",
            Scope::Webhooks => "webhooks",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

documented_by!(
    Scope,
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Scope::ALL.map(Scope::as_str)))
        .build()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_have_fixed_names() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("groups:everything"), None);
    }
}
