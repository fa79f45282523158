//! Which controllers run: Kubernetes' `--controllers` rules over kadm's controller list.

use crate::error::{Error, Result};

/// One controller kadm can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerInfo {
    /// The name `--controllers` takes (Kubernetes' `<thing>-controller` form).
    pub name: &'static str,
    /// Older names Kubernetes still accepts for it.
    pub aliases: &'static [&'static str],
    /// Whether `*` turns it on.
    pub on_by_default: bool,
}

/// The namespace controller: empties and finalizes deleted namespaces.
pub const NAMESPACE: &str = "namespace-controller";

/// The garbage collector: deletes objects whose owners are gone and finishes orphan and
/// foreground deletions.
pub const GARBAGE_COLLECTOR: &str = "garbage-collector-controller";

/// Every controller this kadm version has.
pub const KNOWN: &[ControllerInfo] = &[
    ControllerInfo {
        name: NAMESPACE,
        aliases: &["namespace"],
        on_by_default: true,
    },
    ControllerInfo {
        name: GARBAGE_COLLECTOR,
        aliases: &["garbagecollector"],
        on_by_default: true,
    },
];

pub fn known_names() -> Vec<&'static str> {
    KNOWN.iter().map(|c| c.name).collect()
}

fn canonical(name: &str) -> Option<&'static ControllerInfo> {
    KNOWN
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// The controllers a `--controllers` list enables, in [`KNOWN`] order: `*` enables every
/// controller that is on by default, `foo` enables foo, `-foo` disables foo; the first entry
/// naming a controller decides for it. Unknown names are an error.
pub fn enabled(selection: &[String]) -> Result<Vec<&'static str>> {
    let mut star = false;
    let mut decided: Vec<(&'static str, bool)> = Vec::new();
    for entry in selection.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if entry == "*" {
            star = true;
            continue;
        }
        let (name, on) = match entry.strip_prefix('-') {
            Some(n) => (n, false),
            None => (entry, true),
        };
        let info = canonical(name).ok_or_else(|| Error::UnknownController(name.to_string()))?;
        if !decided.iter().any(|(n, _)| *n == info.name) {
            decided.push((info.name, on));
        }
    }
    Ok(KNOWN
        .iter()
        .filter(|c| match decided.iter().find(|(n, _)| *n == c.name) {
            Some((_, on)) => *on,
            None => star && c.on_by_default,
        })
        .map(|c| c.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn star_enables_defaults_and_minus_disables() {
        assert_eq!(
            enabled(&sel(&["*"])).expect("star"),
            vec![NAMESPACE, GARBAGE_COLLECTOR]
        );
        assert_eq!(
            enabled(&sel(&["*", "-namespace-controller"])).expect("minus"),
            vec![GARBAGE_COLLECTOR]
        );
        assert!(
            enabled(&sel(&["-garbagecollector", "*", "-namespace"]))
                .expect("both off")
                .is_empty()
        );
        assert!(enabled(&sel(&[])).expect("empty").is_empty());
    }

    #[test]
    fn aliases_and_explicit_names_work_without_star() {
        assert_eq!(
            enabled(&sel(&["namespace"])).expect("alias"),
            vec![NAMESPACE]
        );
        assert_eq!(
            enabled(&sel(&["namespace-controller", "-namespace"])).expect("first wins"),
            vec![NAMESPACE]
        );
        assert_eq!(
            enabled(&sel(&["garbagecollector"])).expect("gc alias"),
            vec![GARBAGE_COLLECTOR]
        );
    }

    #[test]
    fn unknown_controllers_are_refused() {
        let e = enabled(&sel(&["*", "-widget"])).expect_err("unknown");
        assert!(
            e.to_string()
                .contains("\"widget\" is not in the list of known controllers"),
            "{e}"
        );
    }
}
