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

/// The ReplicaSet controller: keeps `spec.replicas` pods per ReplicaSet.
pub const REPLICASET: &str = "replicaset-controller";

/// The Deployment controller: rolls ReplicaSets out, scales them and keeps their history.
pub const DEPLOYMENT: &str = "deployment-controller";

/// The DaemonSet controller: one pod per eligible node, rolled out revision by revision.
pub const DAEMONSET: &str = "daemonset-controller";

/// The StatefulSet controller: pods with stable names and storage, in ordinal order.
pub const STATEFULSET: &str = "statefulset-controller";

/// The endpoints controller: an Endpoints object per Service with a selector.
pub const ENDPOINTS: &str = "endpoints-controller";

/// The EndpointSlice controller: discovery.k8s.io/v1 EndpointSlices per Service.
pub const ENDPOINTSLICE: &str = "endpointslice-controller";

/// The ServiceAccount controller: a `default` ServiceAccount in every namespace.
pub const SERVICE_ACCOUNT: &str = "serviceaccount-controller";

/// The Job controller: runs pods to completion.
pub const JOB: &str = "job-controller";

/// The CronJob controller: creates Jobs on a schedule.
pub const CRONJOB: &str = "cronjob-controller";

/// The TTL-after-finished controller: deletes finished Jobs once their TTL passed.
pub const TTL_AFTER_FINISHED: &str = "ttl-after-finished-controller";

/// The node lifecycle controller: Ready=Unknown and taints for nodes that stopped reporting.
pub const NODE_LIFECYCLE: &str = "node-lifecycle-controller";

/// The taint eviction controller: deletes pods from nodes with NoExecute taints they do
/// not tolerate.
pub const TAINT_EVICTION: &str = "taint-eviction-controller";

/// The node IPAM controller: a pod CIDR per node from the cluster CIDR.
pub const NODE_IPAM: &str = "node-ipam-controller";

/// The root CA publisher: a `kube-root-ca.crt` ConfigMap in every namespace.
pub const ROOT_CA_CERT_PUBLISHER: &str = "root-ca-certificate-publisher-controller";

/// The resource quota controller: ResourceQuota status (hard and used).
pub const RESOURCE_QUOTA: &str = "resourcequota-controller";

/// Every controller this kadm version has.
pub const KNOWN: &[ControllerInfo] = &[
    ControllerInfo {
        name: ROOT_CA_CERT_PUBLISHER,
        aliases: &["root-ca-cert-publisher"],
        on_by_default: true,
    },
    ControllerInfo {
        name: RESOURCE_QUOTA,
        aliases: &["resourcequota"],
        on_by_default: true,
    },
    ControllerInfo {
        name: NODE_LIFECYCLE,
        aliases: &["nodelifecycle"],
        on_by_default: true,
    },
    ControllerInfo {
        name: TAINT_EVICTION,
        aliases: &[],
        on_by_default: true,
    },
    ControllerInfo {
        name: NODE_IPAM,
        aliases: &["nodeipam"],
        on_by_default: true,
    },
    ControllerInfo {
        name: ENDPOINTS,
        aliases: &["endpoint"],
        on_by_default: true,
    },
    ControllerInfo {
        name: ENDPOINTSLICE,
        aliases: &["endpointslice"],
        on_by_default: true,
    },
    ControllerInfo {
        name: SERVICE_ACCOUNT,
        aliases: &["serviceaccount"],
        on_by_default: true,
    },
    ControllerInfo {
        name: JOB,
        aliases: &["job"],
        on_by_default: true,
    },
    ControllerInfo {
        name: CRONJOB,
        aliases: &["cronjob"],
        on_by_default: true,
    },
    ControllerInfo {
        name: TTL_AFTER_FINISHED,
        aliases: &["ttl-after-finished"],
        on_by_default: true,
    },
    ControllerInfo {
        name: DAEMONSET,
        aliases: &["daemonset"],
        on_by_default: true,
    },
    ControllerInfo {
        name: STATEFULSET,
        aliases: &["statefulset"],
        on_by_default: true,
    },
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
    ControllerInfo {
        name: REPLICASET,
        aliases: &["replicaset"],
        on_by_default: true,
    },
    ControllerInfo {
        name: DEPLOYMENT,
        aliases: &["deployment"],
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
        let defaults: Vec<&str> = KNOWN
            .iter()
            .filter(|c| c.on_by_default)
            .map(|c| c.name)
            .collect();
        assert_eq!(enabled(&sel(&["*"])).expect("star"), defaults);
        assert!(defaults.contains(&NAMESPACE) && defaults.contains(&GARBAGE_COLLECTOR));
        let minus = enabled(&sel(&["*", "-namespace-controller"])).expect("minus");
        assert!(!minus.contains(&NAMESPACE) && minus.contains(&GARBAGE_COLLECTOR));
        let both_off = enabled(&sel(&["-garbagecollector", "*", "-namespace"])).expect("both off");
        assert!(!both_off.contains(&NAMESPACE) && !both_off.contains(&GARBAGE_COLLECTOR));
        assert_eq!(both_off.len(), defaults.len() - 2);
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
