/// A field of Meta's group-info object that a client may ask for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GroupField {
    Subject,
    Description,
    Participants,
    JoinApprovalMode,
    Suspended,
    CreationTimestamp,
    TotalParticipantCount,
}

impl GroupField {
    /// Every field, in the order used when the client asks for none.
    pub const ALL: [GroupField; 7] = [
        Self::Subject,
        Self::Description,
        Self::Participants,
        Self::JoinApprovalMode,
        Self::Suspended,
        Self::CreationTimestamp,
        Self::TotalParticipantCount,
    ];

    /// The wire spelling, identical to the serde representation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Description => "description",
            Self::Participants => "participants",
            Self::JoinApprovalMode => "join_approval_mode",
            Self::Suspended => "suspended",
            Self::CreationTimestamp => "creation_timestamp",
            Self::TotalParticipantCount => "total_participant_count",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|field| field.as_str() == raw)
            .ok_or_else(|| format!("unknown field '{raw}'; allowed: {}", allowed_list()))
    }
}

fn allowed_list() -> String {
    GroupField::ALL.map(GroupField::as_str).join(", ")
}

wire_enum!(GroupField);

/// A non-empty, duplicate-free, ordered selection of [`GroupField`]s, as
/// forwarded to Meta's `fields` query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupFields(Vec<GroupField>);

impl GroupFields {
    /// `None` (parameter absent) selects every field; `Some` must be a
    /// comma-separated list of known names.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(Self::all());
        };
        if raw.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        let mut fields = Vec::with_capacity(GroupField::ALL.len());
        for item in raw.split(',').map(str::trim) {
            if item.is_empty() {
                return Err("must not contain empty items".to_owned());
            }
            let field = GroupField::parse(item)?;
            // Duplicates are harmless to the client but would be forwarded
            // upstream verbatim, so drop them while keeping first-seen order.
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        Ok(Self(fields))
    }

    pub fn all() -> Self {
        Self(GroupField::ALL.to_vec())
    }

    pub fn as_query(&self) -> String {
        self.0
            .iter()
            .map(|field| field.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn iter(&self) -> std::slice::Iter<'_, GroupField> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[GroupField] {
        &self.0
    }

    pub fn contains(&self, field: GroupField) -> bool {
        self.0.contains(&field)
    }
}

impl<'a> IntoIterator for &'a GroupFields {
    type Item = &'a GroupField;
    type IntoIter = std::slice::Iter<'a, GroupField>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_QUERY: &str = "subject,description,participants,join_approval_mode,suspended,creation_timestamp,total_participant_count";

    #[test]
    fn field_names_round_trip() {
        for field in GroupField::ALL {
            assert_eq!(GroupField::parse(field.as_str()), Ok(field));
            assert_eq!(
                serde_json::to_string(&field).expect("serializable"),
                format!("\"{field}\"")
            );
        }
    }

    #[test]
    fn absent_selects_all_in_declared_order() {
        let fields = GroupFields::parse(None).expect("valid");
        assert_eq!(fields.as_query(), ALL_QUERY);
        assert_eq!(fields.iter().copied().collect::<Vec<_>>(), GroupField::ALL);
        assert_eq!(fields, GroupFields::all());
    }

    #[test]
    fn parses_trims_and_dedups_keeping_first_order() {
        let fields = GroupFields::parse(Some(" participants , subject,participants,subject "))
            .expect("valid");
        assert_eq!(
            fields.as_slice(),
            [GroupField::Participants, GroupField::Subject]
        );
        assert_eq!(fields.as_query(), "participants,subject");
        assert!(fields.contains(GroupField::Subject));
        assert!(!fields.contains(GroupField::Suspended));
        assert_eq!(
            GroupFields::parse(Some(ALL_QUERY)).expect("valid"),
            GroupFields::all()
        );
    }

    #[test]
    fn rejects_empty_string_and_empty_items() {
        assert_eq!(
            GroupFields::parse(Some("")),
            Err("must not be empty".to_owned())
        );
        assert_eq!(
            GroupFields::parse(Some("  ")),
            Err("must not be empty".to_owned())
        );
        for raw in [
            "subject,",
            ",subject",
            "subject,,description",
            "subject, ,description",
            ",",
        ] {
            assert_eq!(
                GroupFields::parse(Some(raw)),
                Err("must not contain empty items".to_owned()),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn rejects_unknown_naming_it_and_listing_allowed() {
        let err = GroupFields::parse(Some("subject,owner")).expect_err("unknown field");
        assert!(err.contains("'owner'"), "{err}");
        for field in GroupField::ALL {
            assert!(err.contains(field.as_str()), "{err}");
        }
        assert!(GroupFields::parse(Some("Subject")).is_err());
    }
}
