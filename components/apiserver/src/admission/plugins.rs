//! Which admission plugins run: `--enable-admission-plugins` / `--disable-admission-plugins`
//! over the plugins kadm implements, all of them on by default. The order they run in is
//! fixed (Kubernetes' order, see the parent module), whatever order the flags list them in.

use std::collections::BTreeSet;

/// One admission plugin kadm implements, by Kubernetes' name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Plugin {
    NamespaceLifecycle,
    LimitRanger,
    ServiceAccount,
    NodeRestriction,
    PodSecurity,
    Priority,
    DefaultTolerationSeconds,
    ResourceQuota,
}

impl Plugin {
    /// Every plugin, in the order the chain runs them.
    pub const ALL: [Plugin; 8] = [
        Plugin::NamespaceLifecycle,
        Plugin::LimitRanger,
        Plugin::ServiceAccount,
        Plugin::NodeRestriction,
        Plugin::PodSecurity,
        Plugin::Priority,
        Plugin::DefaultTolerationSeconds,
        Plugin::ResourceQuota,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Plugin::NamespaceLifecycle => "NamespaceLifecycle",
            Plugin::LimitRanger => "LimitRanger",
            Plugin::ServiceAccount => "ServiceAccount",
            Plugin::NodeRestriction => "NodeRestriction",
            Plugin::PodSecurity => "PodSecurity",
            Plugin::Priority => "Priority",
            Plugin::DefaultTolerationSeconds => "DefaultTolerationSeconds",
            Plugin::ResourceQuota => "ResourceQuota",
        }
    }

    fn from_name(name: &str) -> Option<Plugin> {
        Plugin::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The enabled plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugins(BTreeSet<Plugin>);

impl Default for Plugins {
    /// Everything kadm implements (Kubernetes' recommended set, as far as kadm has it).
    fn default() -> Self {
        Plugins(Plugin::ALL.into_iter().collect())
    }
}

impl Plugins {
    /// The set the two flags select, with Kubernetes' checks: names must be known and may
    /// not be both enabled and disabled. Enabling a plugin that is on by default is fine.
    pub fn from_flags(enable: &[String], disable: &[String]) -> Result<Plugins, String> {
        let parse = |flag: &str, names: &[String]| -> Result<BTreeSet<Plugin>, String> {
            names
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
                .map(|n| {
                    Plugin::from_name(n).ok_or_else(|| {
                        format!(
                            "{flag} plugin {n:?} is unknown; kadm implements {}",
                            Plugin::ALL.map(Plugin::name).join(", ")
                        )
                    })
                })
                .collect()
        };
        let enabled = parse("enable-admission-plugins", enable)?;
        let disabled = parse("disable-admission-plugins", disable)?;
        let both: Vec<&str> = enabled.intersection(&disabled).map(|p| p.name()).collect();
        if !both.is_empty() {
            return Err(format!(
                "[{}] in enable-admission-plugins and disable-admission-plugins overlapped",
                both.join(" ")
            ));
        }
        let mut set = Plugins::default().0;
        set.retain(|p| !disabled.contains(p));
        set.extend(enabled);
        Ok(Plugins(set))
    }

    /// Only `plugins` (tests that isolate one plugin).
    pub fn only(plugins: &[Plugin]) -> Plugins {
        Plugins(plugins.iter().copied().collect())
    }

    pub fn enabled(&self, plugin: Plugin) -> bool {
        self.0.contains(&plugin)
    }

    /// The enabled plugins' names in chain order (logged at start).
    pub fn names(&self) -> Vec<&'static str> {
        Plugin::ALL
            .into_iter()
            .filter(|p| self.enabled(*p))
            .map(Plugin::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn everything_is_on_unless_disabled() {
        let all = Plugins::from_flags(&[], &[]).expect("defaults");
        assert_eq!(all.names().len(), Plugin::ALL.len());
        let some = Plugins::from_flags(
            &s(&["NodeRestriction"]),
            &s(&["ServiceAccount", "Priority"]),
        )
        .expect("flags");
        assert!(!some.enabled(Plugin::ServiceAccount));
        assert!(!some.enabled(Plugin::Priority));
        assert!(some.enabled(Plugin::NodeRestriction) && some.enabled(Plugin::ResourceQuota));
        assert_eq!(some.names()[0], "NamespaceLifecycle");
    }

    #[test]
    fn unknown_and_overlapping_names_are_refused() {
        let e = Plugins::from_flags(&s(&["AlwaysPullImages"]), &[]).expect_err("unknown");
        assert!(
            e.starts_with("enable-admission-plugins plugin \"AlwaysPullImages\" is unknown"),
            "{e}"
        );
        let e = Plugins::from_flags(&s(&["Priority"]), &s(&["Priority"])).expect_err("overlap");
        assert_eq!(
            e,
            "[Priority] in enable-admission-plugins and disable-admission-plugins overlapped"
        );
    }
}
