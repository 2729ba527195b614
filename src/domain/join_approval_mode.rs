/// Whether new members need an admin's approval to join via invite link.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JoinApprovalMode {
    ApprovalRequired,
    AutoApprove,
}

impl JoinApprovalMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "approval_required" => Ok(Self::ApprovalRequired),
            "auto_approve" => Ok(Self::AutoApprove),
            _ => Err("must be 'approval_required' or 'auto_approve'".to_owned()),
        }
    }

    /// The wire spelling, identical to the serde representation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApprovalRequired => "approval_required",
            Self::AutoApprove => "auto_approve",
        }
    }
}

wire_enum!(JoinApprovalMode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_with_as_str_and_serde() {
        for mode in [
            JoinApprovalMode::ApprovalRequired,
            JoinApprovalMode::AutoApprove,
        ] {
            assert_eq!(JoinApprovalMode::parse(mode.as_str()), Ok(mode));
            let json = serde_json::to_string(&mode).expect("serializable");
            assert_eq!(json, format!("\"{mode}\""));
            let back: JoinApprovalMode = serde_json::from_str(&json).expect("deserializable");
            assert_eq!(back, mode);
        }
    }

    #[test]
    fn rejects_other_spellings() {
        for raw in [
            "",
            "AutoApprove",
            "AUTO_APPROVE",
            " auto_approve",
            "auto-approve",
            "none",
        ] {
            assert!(JoinApprovalMode::parse(raw).is_err(), "{raw:?} accepted");
        }
    }
}
