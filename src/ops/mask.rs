//! Update masks (Google AIP-134): the fields of an update the caller names. Without a mask an
//! update changes the fields that are set; with one, exactly the named fields, so that a named
//! field left empty can mean "clear it".

use std::collections::BTreeSet;

use prost_types::FieldMask;

use super::Violations;

/// What an update's mask may name.
pub struct Updatable<'a> {
    /// The fields an update can change, by proto name.
    pub fields: &'a [&'static str],
    /// Fields of the request that are not part of the update (ids, keys), each with why.
    pub fixed: &'a [(&'static str, &'static str)],
    /// The resource field the paths are relative to (`agent`), which a path may also spell out
    /// (`agent.email`); `None` when the fields are the request's own.
    pub resource: Option<&'static str>,
}

/// The fields `mask` names, or `None` without a mask (or with an empty one). Every bad path is
/// a violation of `update_mask.paths`: an unknown field, a fixed one, or `*` (AIP-134's full
/// replacement, which would clear every field not sent: name the fields instead).
pub fn named(mask: Option<&FieldMask>, of: &Updatable<'_>, v: &mut Violations) -> Option<BTreeSet<&'static str>> {
    let mask = mask.filter(|m| !m.paths.is_empty())?;
    let mut named = BTreeSet::new();
    for path in &mask.paths {
        let field = of
            .resource
            .and_then(|prefix| path.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('.')))
            .unwrap_or(path);
        if let Some(known) = of.fields.iter().find(|f| **f == field) {
            named.insert(*known);
        } else if path == "*" {
            v.add("update_mask.paths", "`*` is not accepted: name the fields to change");
        } else if let Some((_, why)) = of.fixed.iter().find(|(f, _)| *f == field) {
            v.add("update_mask.paths", format!("`{field}` cannot be updated: {why}"));
        } else {
            let shown: String = path.chars().take(64).collect();
            v.add(
                "update_mask.paths",
                format!("`{}` is not a field an update can change; these are: {}", shown, of.fields.join(", ")),
            );
        }
    }
    Some(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: Updatable<'static> =
        Updatable { fields: &["email", "level"], fixed: &[("user", "it names the agent")], resource: Some("agent") };

    fn mask(paths: &[&str]) -> FieldMask {
        FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }
    }

    #[test]
    fn no_mask_or_an_empty_one_means_update_what_is_set() {
        let mut v = Violations::new();
        assert_eq!(named(None, &AGENT, &mut v), None);
        assert_eq!(named(Some(&mask(&[])), &AGENT, &mut v), None);
        assert!(v.is_empty());
    }

    #[test]
    fn paths_name_fields_with_or_without_the_resource_prefix() {
        let mut v = Violations::new();
        let named = named(Some(&mask(&["email", "agent.level", "email"])), &AGENT, &mut v).unwrap();
        assert_eq!(named.into_iter().collect::<Vec<_>>(), ["email", "level"]);
        assert!(v.is_empty());
    }

    #[test]
    fn unknown_fixed_and_wildcard_paths_are_each_a_violation_of_update_mask_paths() {
        let mut v = Violations::new();
        let named = named(Some(&mask(&["emial", "user", "*", "email"])), &AGENT, &mut v).unwrap();
        assert_eq!(named.into_iter().collect::<Vec<_>>(), ["email"]);
        let err = v.into_result().unwrap_err();
        assert_eq!(err.fields(), ["update_mask.paths", "update_mask.paths", "update_mask.paths"]);
        let text = format!("{err:?}");
        assert!(text.contains("`emial` is not a field") && text.contains("email, level"), "{text}");
        assert!(text.contains("`user` cannot be updated: it names the agent"), "{text}");
        assert!(text.contains("`*` is not accepted"), "{text}");
    }
}
