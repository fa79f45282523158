//! Which nodes a DaemonSet runs on (Kubernetes' `NodeShouldRunDaemonPod`): the template's
//! `nodeName`, its node selector and required node affinity, and the node's taints against
//! the template's tolerations plus the ones every daemon pod gets.
//!
//! Two answers per node: *should run* (a missing pod is created) needs every `NoSchedule`
//! and `NoExecute` taint tolerated; *should continue running* (an existing pod stays) only
//! needs the `NoExecute` ones — a `NoSchedule` taint added later does not evict.

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// The tolerations Kubernetes adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`):
/// node problems must not evict or block the node's own agents.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// `AddOrUpdateTolerationInPodSpec` for each daemon toleration: one with the same key,
/// operator, value and effect is replaced, others are appended.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations(host_network) {
        match list.iter_mut().find(|x| same_toleration(x, &t)) {
            Some(existing) => *existing = t,
            None => list.push(t),
        }
    }
}

fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let op = |t: &Toleration| t.operator.clone().unwrap_or_else(|| "Equal".into());
    a.key == b.key && op(a) == op(b) && a.value == b.value && a.effect == b.effect
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether some taint with an effect `relevant` accepts is tolerated by none of `tolerations`.
fn has_untolerated(taints: &[Taint], tolerations: &[Toleration], relevant: &[&str]) -> bool {
    taints
        .iter()
        .filter(|t| relevant.contains(&t.effect.as_str()))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// One node selector requirement against the node's labels (`matchExpressions`).
fn label_requirement(r: &NodeSelectorRequirement, node: &Node) -> bool {
    let value = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(&r.key))
        .map(String::as_str);
    let values: &[String] = r.values.as_deref().unwrap_or(&[]);
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (value.and_then(number), values) else {
                return false;
            };
            let Some(want) = number(want) else {
                return false;
            };
            if r.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// One `matchFields` requirement: only `metadata.name` is a node field.
fn field_requirement(r: &NodeSelectorRequirement, node: &Node) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let name = node.metadata.name.as_deref().unwrap_or("");
    let values: &[String] = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => values.iter().any(|v| v == name),
        "NotIn" => !values.iter().any(|v| v == name),
        _ => false,
    }
}

/// A term matches when all its requirements do; a term without requirements matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| label_requirement(r, node))
        && fields.iter().all(|r| field_requirement(r, node))
}

/// `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`: the node selector's labels all
/// present, and some term of the required node affinity matching.
pub fn matches_required_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    if !selector_ok {
        return false;
    }
    match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
    }
}

/// Kubernetes' `NodeShouldRunDaemonPod`: (should run, should continue running).
pub fn should_run(template: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    if template
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    if !matches_required_affinity(template, node) {
        return (false, false);
    }
    let mut tolerations = template.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations(template.host_network == Some(true)));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    if has_untolerated(taints, &tolerations, &["NoSchedule", "NoExecute"]) {
        return (
            false,
            !has_untolerated(taints, &tolerations, &["NoExecute"]),
        );
    }
    (true, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).expect("node")
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("spec")
    }

    fn plain() -> PodSpec {
        spec(json!({"containers": [{"name": "c"}]}))
    }

    #[test]
    fn untainted_nodes_run_and_tainted_ones_do_not() {
        let n = node(json!({"metadata": {"name": "a"}}));
        assert_eq!(should_run(&plain(), &n), (true, true));
        let no_schedule = node(json!({"metadata": {"name": "b"},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}));
        // A NoSchedule taint keeps new pods away but does not evict existing ones.
        assert_eq!(should_run(&plain(), &no_schedule), (false, true));
        let no_execute = node(json!({"metadata": {"name": "c"},
            "spec": {"taints": [{"key": "dedicated", "effect": "NoExecute"}]}}));
        assert_eq!(should_run(&plain(), &no_execute), (false, false));
        let prefer = node(json!({"metadata": {"name": "d"},
            "spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}}));
        assert_eq!(should_run(&plain(), &prefer), (true, true));
    }

    #[test]
    fn tolerations_of_the_template_and_daemon_defaults_count() {
        let tolerating = spec(json!({"containers": [{"name": "c"}],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}));
        let n = node(json!({"metadata": {"name": "b"},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}));
        assert_eq!(should_run(&tolerating, &n), (true, true));
        // Node problems and cordons never keep daemon pods away.
        let sick = node(
            json!({"metadata": {"name": "s"}, "spec": {"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(should_run(&plain(), &sick), (true, true));
        // The network taint only for host-network pods.
        let no_net = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}}));
        assert_eq!(should_run(&plain(), &no_net), (false, true));
        let host = spec(json!({"containers": [{"name": "c"}], "hostNetwork": true}));
        assert_eq!(should_run(&host, &no_net), (true, true));
        let everything =
            spec(json!({"containers": [{"name": "c"}], "tolerations": [{"operator": "Exists"}]}));
        let anything = node(
            json!({"metadata": {"name": "x"}, "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}}),
        );
        assert_eq!(should_run(&everything, &anything), (true, true));
    }

    #[test]
    fn node_selector_and_required_affinity_select_nodes() {
        let n = node(json!({"metadata": {"name": "a", "labels": {"disk": "ssd", "cores": "8"}}}));
        let sel = spec(json!({"containers": [{"name": "c"}], "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&sel, &n), (true, true));
        let other = spec(json!({"containers": [{"name": "c"}], "nodeSelector": {"disk": "hdd"}}));
        assert_eq!(should_run(&other, &n), (false, false));
        let aff = |terms: serde_json::Value| {
            spec(
                json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        assert!(should_run(&aff(json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}])), &n).0);
        assert!(!should_run(&aff(json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}])), &n).0);
        assert!(
            should_run(
                &aff(json!([
                    {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
                ])),
                &n
            )
            .0,
            "terms are ORed"
        );
        assert!(
            !should_run(
                &aff(json!([{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]},
            {"key": "gpu", "operator": "Exists"}]}])),
                &n
            )
            .0,
            "requirements are ANDed"
        );
        assert!(
            !should_run(&aff(json!([{}])), &n).0,
            "an empty term matches nothing"
        );
        assert!(
            should_run(
                &aff(json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}])),
                &n
            )
            .0
        );
        let pinned = spec(json!({"containers": [{"name": "c"}], "nodeName": "b"}));
        assert_eq!(should_run(&pinned, &n), (false, false));
    }

    #[test]
    fn daemon_tolerations_replace_equal_ones_and_append_the_rest() {
        let mut s = spec(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {"key": "mine", "operator": "Exists"}]}));
        add_daemon_tolerations(&mut s);
        let t = s.tolerations.expect("tolerations");
        assert_eq!(t.len(), 7);
        assert_eq!(t[0].key.as_deref(), Some("node.kubernetes.io/not-ready"));
        assert_eq!(
            t[0].toleration_seconds, None,
            "no tolerationSeconds: never evicted"
        );
        assert_eq!(t[1].key.as_deref(), Some("mine"));
        assert!(
            !t.iter()
                .any(|x| x.key.as_deref() == Some("node.kubernetes.io/network-unavailable"))
        );
    }
}
