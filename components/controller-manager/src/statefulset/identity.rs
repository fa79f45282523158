//! A StatefulSet pod's identity: its name `<set>-<ordinal>`, its hostname and subdomain
//! (the governing Service), its labels, and its claims `<template>-<set>-<ordinal>`, which
//! outlive the pod so a recreated `web-0` gets `web-0`'s data back.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::history::REVISION_LABEL;
use crate::workload;

/// The label with the pod's name, for per-pod Services.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal (Kubernetes ≥ 1.28).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// `getParentNameAndOrdinal`: `web-12` → (`web`, 12).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

/// The pod's ordinal if it is a member of the set (`isMemberOf`).
pub fn ordinal_in(set_name: &str, pod: &Pod) -> Option<i32> {
    let (parent, ordinal) = parent_and_ordinal(pod.metadata.name.as_deref()?)?;
    (parent == set_name).then_some(ordinal)
}

pub fn pod_name(set_name: &str, ordinal: i32) -> String {
    format!("{set_name}-{ordinal}")
}

/// `getPersistentVolumeClaimName`.
pub fn claim_name(template: &str, set_name: &str, ordinal: i32) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

/// The retention policy, Kubernetes' defaults (`Retain`) filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Claims go with the StatefulSet (`whenDeleted: Delete`).
    pub delete_with_set: bool,
    /// Claims of pods removed by a scale-down go with the pod (`whenScaled: Delete`).
    pub delete_when_scaled: bool,
}

pub fn retention(set: &StatefulSet) -> Retention {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let is_delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
    Retention {
        delete_with_set: is_delete(policy.and_then(|p| p.when_deleted.as_ref())),
        delete_when_scaled: is_delete(policy.and_then(|p| p.when_scaled.as_ref())),
    }
}

/// A plain owner reference (not a controller), as the retention policy sets them.
pub fn owner_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// `getPersistentVolumeClaims`: one claim per template, labelled with the template's labels
/// and the set's `matchLabels`; owned by the set when claims go with it.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let set_name = set.name_any();
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let owner = retention(set).delete_with_set.then(|| {
        owner_ref(
            "apps/v1",
            "StatefulSet",
            &set_name,
            &set.uid().unwrap_or_default(),
        )
    });
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let mut claim = t.clone();
            let template_name = t.metadata.name.clone().unwrap_or_default();
            let mut labels: BTreeMap<String, String> =
                t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&template_name, &set_name, ordinal)),
                namespace: set.namespace(),
                labels: Some(labels),
                annotations: t.metadata.annotations.clone(),
                finalizers: t.metadata.finalizers.clone(),
                owner_references: owner.clone().map(|o| vec![o]),
                ..Default::default()
            };
            claim.status = None;
            claim
        })
        .collect()
}

/// `newStatefulSetPod` + `setPodRevision`: the pod for `ordinal` from `template` (the
/// template of the revision it belongs to).
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let set_name = set.name_any();
    let ns = set.namespace().unwrap_or_default();
    let mut pod = workload::pods::from_template(
        template,
        &set_name,
        &ns,
        workload::claim::controller_ref(set),
    );
    let name = pod_name(&set_name, ordinal);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let service = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    if service.is_some() {
        spec.subdomain = service;
    }
    // `updateStorage`: each claim template becomes a volume of the same name (replacing a
    // template volume of that name).
    let claim_volumes: Vec<Volume> = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .map(|t| {
            let template_name = t.metadata.name.clone().unwrap_or_default();
            Volume {
                name: template_name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&template_name, &set_name, ordinal),
                    read_only: None,
                }),
                ..Default::default()
            }
        })
        .collect();
    if !claim_volumes.is_empty() {
        let others: Vec<Volume> = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claim_volumes.iter().any(|c| c.name == v.name))
            .collect();
        spec.volumes = Some(claim_volumes.into_iter().chain(others).collect());
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(policy: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "nginx"}},
                "persistentVolumeClaimRetentionPolicy": policy,
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}],
                        "volumes": [{"name": "www", "emptyDir": {}}, {"name": "conf", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "data"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        }))
        .expect("set")
    }

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-x"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-3"}})).expect("pod");
        assert_eq!(ordinal_in("web", &pod), Some(3));
        assert_eq!(ordinal_in("db", &pod), None);
    }

    #[test]
    fn pods_have_stable_identity_storage_and_revision() {
        let s = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        let t = s.spec.as_ref().expect("spec").template.clone();
        let pod = new_pod(&s, &t, 2, "web-7b9c6");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["name"], "web-2");
        assert!(v["metadata"].get("generateName").is_none());
        assert_eq!(
            v["metadata"]["labels"],
            json!({"app": "nginx", "statefulset.kubernetes.io/pod-name": "web-2",
                "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-7b9c6"})
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(v["spec"]["hostname"], "web-2");
        assert_eq!(v["spec"]["subdomain"], "nginx");
        assert_eq!(
            v["spec"]["volumes"],
            json!([{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}},
                   {"name": "conf", "emptyDir": {}}])
        );
    }

    #[test]
    fn claims_carry_labels_and_follow_the_retention_policy() {
        let s = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        let c = claims(&s, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].metadata.name.as_deref(), Some("www-web-0"));
        assert_eq!(c[0].metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            c[0].metadata.labels,
            Some(BTreeMap::from([
                ("app".to_string(), "nginx".to_string()),
                ("tier".to_string(), "data".to_string())
            ]))
        );
        assert!(c[0].metadata.owner_references.is_none());
        let deleting = set(json!({"whenDeleted": "Delete", "whenScaled": "Retain"}));
        assert_eq!(
            retention(&deleting),
            Retention {
                delete_with_set: true,
                delete_when_scaled: false
            }
        );
        let refs = claims(&deleting, 1)[0]
            .metadata
            .owner_references
            .clone()
            .expect("owned");
        assert_eq!(refs[0].uid, "set-uid");
        assert_eq!(refs[0].controller, None);
    }
}
