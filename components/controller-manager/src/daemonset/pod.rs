//! The pods a DaemonSet creates, and the node each one is for.
//!
//! Since Kubernetes 1.12 the controller does not bind daemon pods itself: it pins each pod
//! to its node with a required node affinity `matchFields metadata.name In [<node>]` and
//! lets the scheduler bind it (the scheduler then also accounts for the pod's resources).
//! A pod's node is therefore its `spec.nodeName` once bound, its affinity term before.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec,
};

use super::eligibility::add_daemon_tolerations;
use crate::{history, workload};

/// The label with the DaemonSet's template generation, kept for old clients
/// (`extensions.DaemonSetTemplateGenerationKey`).
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where the apiserver keeps that generation on the DaemonSet.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The DaemonSet's template generation, when its annotation holds one.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// `CreatePodTemplate`: the template with the daemon tolerations, the revision hash label
/// and, when known, the template generation label.
pub fn template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(spec) = t.spec.as_mut() {
        add_daemon_tolerations(spec);
    }
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(history::REVISION_LABEL.into(), hash.into());
    }
    t
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the one
/// term selecting `node` by name; everything else in the affinity stays.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// The pod for `node`, made from the revision's template.
pub fn new_pod(ds: &DaemonSet, template: &PodTemplateSpec, node: &str) -> Pod {
    let namespace = ds.metadata.namespace.as_deref().unwrap_or_default();
    let name = ds.metadata.name.as_deref().unwrap_or_default();
    let mut pod = workload::pods::from_template(
        template,
        name,
        namespace,
        workload::claim::controller_ref(ds),
    );
    if let Some(spec) = pod.spec.as_mut() {
        spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    }
    pod
}

/// `GetTargetNodeName`: the node the pod runs on, or the one its affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds() -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid",
                "annotations": {"deprecated.daemonset.template.generation": "3"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "i"}],
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "os", "operator": "In", "values": ["linux"]}]}]}},
                        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                            {"topologyKey": "zone", "labelSelector": {"matchLabels": {"x": "y"}}}]}}}}}
        }))
        .expect("ds")
    }

    #[test]
    fn pods_are_pinned_by_affinity_and_labelled_with_the_revision() {
        let d = ds();
        let t = template(&d, "5d4f8b");
        let pod = new_pod(&d, &t, "node-1");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["generateName"], "agent-");
        assert_eq!(
            v["metadata"]["labels"]["controller-revision-hash"],
            "5d4f8b"
        );
        assert_eq!(v["metadata"]["labels"]["pod-template-generation"], "3");
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert_eq!(v["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
        assert_eq!(
            v["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]})
        );
        assert_eq!(
            v["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                [0]["topologyKey"],
            "zone",
            "the rest of the affinity stays"
        );
        assert!(v["spec"].get("nodeName").is_none(), "the scheduler binds");
        assert_eq!(v["spec"]["tolerations"].as_array().map(Vec::len), Some(6));
        assert_eq!(target_node(&pod).as_deref(), Some("node-1"));
    }

    #[test]
    fn bound_pods_belong_to_their_node() {
        let mut pod = new_pod(&ds(), &template(&ds(), "h"), "node-1");
        if let Some(s) = pod.spec.as_mut() {
            s.node_name = Some("node-2".into());
        }
        assert_eq!(target_node(&pod).as_deref(), Some("node-2"));
        assert_eq!(target_node(&Pod::default()), None);
    }
}
