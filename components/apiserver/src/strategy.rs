//! What the apiserver does to an object besides storing it — Kubernetes' REST
//! "strategies": system fields on create, the spec/status split on update,
//! `generation`, and how a delete proceeds (graceful, finalizers, immediate).

use kadm_apimachinery::{ApiError, ResourceInfo, defaults, meta};
use serde_json::{Value, json};

/// Resources whose `metadata.generation` counts spec changes (controllers compare it
/// with `status.observedGeneration`).
pub fn tracks_generation(res: &ResourceInfo) -> bool {
    matches!(
        (res.group, res.plural),
        (
            "apps",
            "deployments" | "replicasets" | "statefulsets" | "daemonsets"
        ) | ("batch", _)
            | ("policy", "poddisruptionbudgets")
    )
}

/// Resources whose DELETE answers with the object rather than a `Status`.
pub fn returns_deleted_object(res: &ResourceInfo) -> bool {
    matches!(
        (res.group, res.plural),
        ("", "pods" | "services" | "namespaces")
    )
}

/// Sets the fields the system owns on a new object. `obj` has its final name and namespace.
pub fn prepare_create(res: &ResourceInfo, obj: &mut Value) {
    meta::set(obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
    meta::set(obj, "creationTimestamp", json!(meta::now()));
    for f in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "resourceVersion",
    ] {
        meta::remove(obj, f);
    }
    if tracks_generation(res) {
        meta::set(obj, "generation", json!(1));
    } else {
        meta::remove(obj, "generation");
    }
    defaults::apply(res, obj);
    if (res.group, res.plural) == ("batch", "jobs") {
        generate_job_selector(obj);
    }
    match (res.group, res.plural) {
        ("", "namespaces") => {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") => {
            let qos = defaults::qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        // Kubernetes defaults the phase of a new claim; binding it is the volume controller's.
        ("", "persistentvolumeclaims") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        // A node registers with the status it observed.
        ("", "nodes") => {}
        _ if res.has_status => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
}

/// Labels the Job strategy gives a new Job's pod template, and the selector it derives from
/// them, so that a Job's pods match that Job only (unless `spec.manualSelector` is true).
const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
/// The uid labels of a Job's pods; the selector matches the second.
const JOB_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// Kubernetes' `generateSelector`: adds the job-name and controller-uid labels to the pod
/// template (keeping values the client set, which validation then judges) and selects
/// `batch.kubernetes.io/controller-uid`. Runs after the uid is assigned.
fn generate_job_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if !template.is_object() {
        return;
    }
    let meta = template
        .as_object_mut()
        .map(|t| t.entry("metadata").or_insert_with(|| json!({})));
    if let Some(labels) = meta
        .and_then(Value::as_object_mut)
        .map(|m| m.entry("labels").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        for key in JOB_NAME_LABELS {
            labels.entry(key).or_insert_with(|| name.clone());
        }
        for key in JOB_UID_LABELS {
            labels.entry(key).or_insert_with(|| uid.clone());
        }
    }
    let selector = spec.entry("selector").or_insert_with(|| json!({}));
    if selector.is_null() {
        *selector = json!({});
    }
    if let Some(sel) = selector.as_object_mut() {
        let match_labels = sel.entry("matchLabels").or_insert_with(|| json!({}));
        if match_labels.is_null() {
            *match_labels = json!({});
        }
        if let Some(m) = match_labels.as_object_mut() {
            m.entry(JOB_UID_LABELS[1]).or_insert(uid);
        }
    }
}

/// Objects that record who asked for them: a CSR's `spec.username`/`groups`/`uid`
/// come from the authenticated requester, never from the body (Kubernetes' CSR strategy).
pub fn set_requester(res: &ResourceInfo, obj: &mut Value, user: &str, groups: &[String]) {
    if res.group == "certificates.k8s.io" && res.plural == "certificatesigningrequests" {
        obj["spec"]["username"] = json!(user);
        obj["spec"]["groups"] = json!(groups);
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("uid");
        }
    }
}

/// Fills `lastUpdateTime`/`lastTransitionTime` of conditions a client left empty.
fn stamp_conditions(conditions: &mut Value, old: Option<&Value>) {
    let now = meta::now();
    for c in conditions.as_array_mut().into_iter().flatten() {
        let previous = old
            .and_then(Value::as_array)
            .and_then(|o| o.iter().find(|p| p.get("type") == c.get("type")));
        for f in ["lastUpdateTime", "lastTransitionTime"] {
            if c.get(f).is_none_or(Value::is_null) {
                let keep = previous
                    .filter(|p| f == "lastTransitionTime" && p.get("status") == c.get("status"))
                    .and_then(|p| p.get(f))
                    .filter(|v| !v.is_null())
                    .cloned();
                c[f] = keep.unwrap_or_else(|| json!(now));
            }
        }
    }
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k)
}

/// Merges an update (`new`) onto the stored object (`old`) for the endpoint `sub`
/// (`""` main, `status`, `finalize`, `approval`). System-owned metadata always comes
/// from `old`; the main endpoint keeps `old.status`, the status endpoint keeps everything but status.
pub fn prepare_update(
    res: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    sub: &str,
) -> Result<(), ApiError> {
    match sub {
        "status" => {
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            // Kubernetes lets status writers touch metadata too (labels, annotations,
            // ownerReferences, finalizers); only spec is pinned.
            if let Some(m) = new.get("metadata").cloned() {
                merged["metadata"] = m;
            }
            *new = merged;
        }
        "finalize" => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = old.clone();
            merged["spec"] = json!({"finalizers": finalizers});
            *new = merged;
        }
        "approval" => {
            let conditions = new.pointer("/status/conditions").cloned();
            let mut merged = old.clone();
            if let Some(mut c) = conditions {
                stamp_conditions(&mut c, old.pointer("/status/conditions"));
                merged["status"]["conditions"] = c;
            }
            *new = merged;
        }
        _ => {
            if res.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            if res.plural == "namespaces" && res.group.is_empty() {
                // spec.finalizers changes only through /finalize.
                if let Some(s) = old.get("spec") {
                    new["spec"] = s.clone();
                }
            }
            defaults::apply(res, new);
        }
    }
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match meta::metadata(old).and_then(|m| m.get(f)).cloned() {
            Some(v) => meta::set(new, f, v),
            None => meta::remove(new, f),
        }
    }
    if tracks_generation(res) {
        let old_gen = meta::generation(old).max(1);
        let spec_changed = field(old, "spec") != field(new, "spec");
        meta::set(
            new,
            "generation",
            json!(if spec_changed { old_gen + 1 } else { old_gen }),
        );
    } else if let Some(g) = meta::metadata(old)
        .and_then(|m| m.get("generation"))
        .cloned()
    {
        meta::set(new, "generation", g);
    } else {
        meta::remove(new, "generation");
    }
    if meta::deletion_timestamp(old).is_some() {
        // A set, printed sorted as Go's %#v prints a []string (ValidateNoNewFinalizers).
        let added: std::collections::BTreeSet<String> = meta::finalizers(new)
            .into_iter()
            .filter(|f| !meta::finalizers(old).contains(f))
            .collect();
        if !added.is_empty() {
            let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(ApiError::invalid(
                res.group,
                res.kind,
                meta::name(old),
                vec![kadm_apimachinery::Cause::forbidden(
                    "metadata.finalizers",
                    format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        listed.join(", ")
                    ),
                )],
            ));
        }
    }
    if res.group.is_empty() && res.plural == "pods" {
        // Compare defaulted forms: an old object stored before a default existed must not look changed.
        let mut old_defaulted = old.clone();
        defaults::apply(res, &mut old_defaulted);
        check_pod_update(&old_defaulted, new)?;
    }
    Ok(())
}

/// Pods are mostly immutable after creation: only images, activeDeadlineSeconds,
/// tolerations (additions) and scheduling gates may change, as in Kubernetes.
fn check_pod_update(old: &Value, new: &Value) -> Result<(), ApiError> {
    let (Some(o), Some(n)) = (old.get("spec"), new.get("spec")) else {
        return Ok(());
    };
    let mut o = o.clone();
    let mut n = n.clone();
    for spec in [&mut o, &mut n] {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
        if let Some(m) = spec.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
            m.remove("schedulingGates");
        }
    }
    // Binding sets nodeName once: an update may fill an empty nodeName only via binding.
    if o != n {
        return Err(ApiError::invalid(
            "",
            "Pod",
            meta::name(old),
            vec![kadm_apimachinery::Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            )],
        ));
    }
    Ok(())
}

/// After an update, an object that is being deleted with nothing left to wait for is removed.
pub fn should_delete_during_update(res: &ResourceInfo, obj: &Value) -> bool {
    if meta::deletion_timestamp(obj).is_none() || !meta::finalizers(obj).is_empty() {
        return false;
    }
    let grace = meta::metadata(obj)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64);
    if grace.unwrap_or(0) > 0 {
        return false;
    }
    if res.group.is_empty() && res.plural == "namespaces" {
        return obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
    }
    true
}

/// The grace period a delete of `obj` gets: pods bound to a node wait for their
/// kubelet (the request's `gracePeriodSeconds`, else `terminationGracePeriodSeconds`);
/// everything else goes at once.
pub fn grace_period(res: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if !(res.group.is_empty() && res.plural == "pods") {
        return 0;
    }
    let unscheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Failed" | "Succeeded")
    );
    if unscheduled || finished {
        return 0;
    }
    let grace = requested
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30);
    // Kubernetes turns a requested 0 into 1 for pods on a node unless forced; a
    // negative period means "use the default".
    if grace < 0 { 30 } else { grace }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadm_apimachinery::registry::lookup;

    #[test]
    fn new_jobs_get_the_generated_selector_and_template_labels() {
        let jobs = lookup("batch", "v1", "jobs").expect("jobs");
        let mut job = json!({"metadata": {"name": "pi", "namespace": "d"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi", "job-name": "mine"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        prepare_create(jobs, &mut job);
        let uid = job["metadata"]["uid"].as_str().expect("uid").to_string();
        assert!(!uid.is_empty());
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "pi", "job-name": "mine", "batch.kubernetes.io/job-name": "pi",
                "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid})
        );

        let mut manual = json!({"metadata": {"name": "m", "namespace": "d"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        prepare_create(jobs, &mut manual);
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
        assert_eq!(
            manual["spec"]["template"]["metadata"]["labels"],
            json!({"a": "b"})
        );
    }

    #[test]
    fn new_claims_are_pending_and_revisions_have_no_generation() {
        let pvc = lookup("", "v1", "persistentvolumeclaims").expect("pvc");
        let mut claim = json!({"metadata": {"name": "www-web-0", "namespace": "d"},
            "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}});
        prepare_create(pvc, &mut claim);
        assert_eq!(claim["status"], json!({"phase": "Pending"}));
        assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
        assert!(claim["metadata"].get("generation").is_none());
        let cr = lookup("apps", "v1", "controllerrevisions").expect("cr");
        let mut rev = json!({"metadata": {"name": "web-1", "namespace": "d"}, "revision": 1});
        prepare_create(cr, &mut rev);
        assert!(rev["metadata"].get("generation").is_none());
        let sts = lookup("apps", "v1", "statefulsets").expect("sts");
        let mut set = json!({"metadata": {"name": "web", "namespace": "d"}, "spec": {}});
        prepare_create(sts, &mut set);
        assert_eq!(set["metadata"]["generation"], 1);
    }

    #[test]
    fn spec_update_bumps_generation_status_does_not() {
        let d = lookup("apps", "v1", "deployments").expect("deploy");
        let old = json!({"metadata": {"name": "d", "generation": 3, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "d", "uid": "other"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        prepare_update(d, &old, &mut new, "").expect("update");
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(new["metadata"]["uid"], "u");
        assert_eq!(
            new["status"]["replicas"], 1,
            "main endpoint must not write status"
        );
        let mut st =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 5}, "status": {"replicas": 2}});
        prepare_update(d, &old, &mut st, "status").expect("status");
        assert_eq!(
            st["spec"]["replicas"], 1,
            "status endpoint must not write spec"
        );
        assert_eq!(st["status"]["replicas"], 2);
        assert_eq!(st["metadata"]["generation"], 3);
    }

    #[test]
    fn csr_requester_comes_from_authentication_and_approval_is_stamped() {
        let csr = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").expect("csr");
        let mut o = json!({"metadata": {"name": "c"}, "spec": {"username": "forged", "uid": "x"}});
        set_requester(csr, &mut o, "alice", &["dev".to_string()]);
        assert_eq!(o["spec"]["username"], "alice");
        assert_eq!(o["spec"]["groups"], json!(["dev"]));
        assert!(o["spec"].get("uid").is_none());
        let old = json!({"metadata": {"name": "c"}, "spec": {}});
        let mut new = json!({"metadata": {"name": "c"}, "status": {"conditions": [{"type": "Approved", "status": "True", "lastTransitionTime": null}]}});
        prepare_update(csr, &old, &mut new, "approval").expect("approve");
        assert!(
            new.pointer("/status/conditions/0/lastTransitionTime")
                .is_some_and(Value::is_string)
        );
        assert!(
            new.pointer("/status/conditions/0/lastUpdateTime")
                .is_some_and(Value::is_string)
        );
    }

    #[test]
    fn namespace_create_adds_kubernetes_finalizer() {
        let ns = lookup("", "v1", "namespaces").expect("ns");
        let mut o = json!({"metadata": {"name": "x"}});
        prepare_create(ns, &mut o);
        assert_eq!(o["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(o["status"]["phase"], "Active");
        assert!(!meta::uid(&o).is_empty());
    }

    #[test]
    fn only_bound_running_pods_delete_gracefully() {
        let pods = lookup("", "v1", "pods").expect("pods");
        assert_eq!(grace_period(pods, &json!({"spec": {}}), None), 0);
        let bound = json!({"spec": {"nodeName": "n", "terminationGracePeriodSeconds": 5}, "status": {"phase": "Running"}});
        assert_eq!(grace_period(pods, &bound, None), 5);
        assert_eq!(grace_period(pods, &bound, Some(0)), 0);
        let cm = lookup("", "v1", "configmaps").expect("cm");
        assert_eq!(grace_period(cm, &bound, Some(30)), 0);
    }

    #[test]
    fn adding_finalizers_to_a_deleting_object_is_refused() {
        let cm = lookup("", "v1", "configmaps").expect("cm");
        let old = json!({"metadata": {"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a"]}});
        let mut new = json!({"metadata": {"name": "c", "finalizers": ["a", "b"]}});
        assert_eq!(
            prepare_update(cm, &old, &mut new, "")
                .expect_err("refused")
                .code,
            422
        );
    }

    #[test]
    fn pod_spec_is_immutable_except_images() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let mut ok = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:2"}]}});
        prepare_update(pods, &old, &mut ok, "").expect("image change allowed");
        let mut bad = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "b", "image": "x:1"}]}});
        assert_eq!(
            prepare_update(pods, &old, &mut bad, "")
                .expect_err("refused")
                .code,
            422
        );
    }
}
