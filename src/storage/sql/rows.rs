//! How rows are read. Each query's columns arrive in a struct deriving `sqlx::FromRow`, read
//! by name with each value checked against its Rust type; that struct becomes the storage's
//! record through the checked conversions below. A value this build does not expect (another
//! type, a NULL, a status it does not know, an integer out of range) is then an error naming
//! the column, answered to the caller (who logs it), never a panic in a handler or a
//! background task, and never a guess such as taking an unknown status for `pending`.

/// The error for a value read from `column` that this build cannot take.
pub(super) fn unexpected(column: &str, problem: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: problem.into(),
    }
}

/// A word-valued column (a status, a state) read with `parse`, which knows every word this
/// build writes.
pub(super) fn known<T>(
    column: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> sqlx::Result<T> {
    parse(value).ok_or_else(|| unexpected(column, format!("unknown value {value:?}")))
}

/// An integer column's value as the narrower integer the record holds.
pub(super) fn narrow<T: TryFrom<i64>>(column: &str, value: i64) -> sqlx::Result<T> {
    T::try_from(value).map_err(|_| {
        unexpected(
            column,
            format!("{value} does not fit in {}", std::any::type_name::<T>()),
        )
    })
}

/// A 0/1 column as a bool.
pub(super) fn flag(column: &str, value: i64) -> sqlx::Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(unexpected(column, format!("{other} is neither 0 nor 1"))),
    }
}

/// A column holding one of the domain's validated ids, read with its `parse`.
pub(super) fn parsed<T>(
    column: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> sqlx::Result<T> {
    parse(value).map_err(|why| unexpected(column, format!("{value:?}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_word_is_an_error_naming_column_and_value() {
        let e = known("status", "weird", |_| None::<()>).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("status") && text.contains("\"weird\""),
            "{text}"
        );
        assert_eq!(
            known("status", "ok", |s| (s == "ok").then_some(1)).unwrap(),
            1
        );
    }

    #[test]
    fn integers_are_narrowed_only_when_they_fit() {
        assert_eq!(narrow::<u16>("status", 204).unwrap(), 204);
        assert!(narrow::<u16>("status", 70_000).is_err());
        assert!(narrow::<u16>("status", -1).is_err());
        assert!(narrow::<u32>("attempts", i64::from(u32::MAX) + 1).is_err());
        assert_eq!(narrow::<u32>("attempts", 3).unwrap(), 3);
    }

    #[test]
    fn a_flag_is_zero_or_one() {
        assert!(!flag("suspended", 0).unwrap());
        assert!(flag("suspended", 1).unwrap());
        assert!(flag("suspended", 2).is_err());
        assert!(flag("suspended", -1).is_err());
    }

    #[test]
    fn a_malformed_id_is_an_error_naming_the_value() {
        let e = parsed("group_id", "a/b", |_| Err::<(), _>("not path-safe".into())).unwrap_err();
        assert!(e.to_string().contains("\"a/b\""), "{e}");
    }
}
