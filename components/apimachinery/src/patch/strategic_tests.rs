//! Table-driven tests of the strategic merge patch engine against a small metadata
//! table copied from Kubernetes v1.33's OpenAPI (`x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`), so the engine is tested apart from the loader.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const SERVICE: &str = "io.k8s.api.core.v1.Service";
const PDB: &str = "io.k8s.api.policy.v1.PodDisruptionBudget";

/// `definition.field` → (strategy, merge key, shape of the value or items).
struct Table(HashMap<(String, String), FieldMeta>);

fn s(def: &str) -> Shape {
    Shape::Struct(format!("io.k8s.{def}"))
}

fn table() -> Table {
    let strings = Shape::Map(Box::new(Shape::Opaque));
    let rows: Vec<(&str, &str, &str, Option<&str>, Shape)> = vec![
        (
            "api.apps.v1.Deployment",
            "metadata",
            "",
            None,
            s("apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        ),
        (
            "api.apps.v1.Deployment",
            "spec",
            "",
            None,
            s("api.apps.v1.DeploymentSpec"),
        ),
        (
            "api.apps.v1.DeploymentSpec",
            "strategy",
            "retainKeys",
            None,
            s("api.apps.v1.DeploymentStrategy"),
        ),
        (
            "api.apps.v1.DeploymentSpec",
            "template",
            "",
            None,
            s("api.core.v1.PodTemplateSpec"),
        ),
        (
            "api.apps.v1.DeploymentSpec",
            "selector",
            "",
            None,
            s("apimachinery.pkg.apis.meta.v1.LabelSelector"),
        ),
        (
            "api.apps.v1.DeploymentStrategy",
            "rollingUpdate",
            "",
            None,
            s("api.apps.v1.RollingUpdateDeployment"),
        ),
        (
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "labels",
            "",
            None,
            strings.clone(),
        ),
        (
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "annotations",
            "",
            None,
            strings.clone(),
        ),
        (
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
            "merge",
            None,
            Shape::Opaque,
        ),
        (
            "apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "ownerReferences",
            "merge",
            Some("uid"),
            s("apimachinery.pkg.apis.meta.v1.OwnerReference"),
        ),
        (
            "apimachinery.pkg.apis.meta.v1.LabelSelector",
            "matchLabels",
            "",
            None,
            strings.clone(),
        ),
        (
            "api.core.v1.PodTemplateSpec",
            "metadata",
            "",
            None,
            s("apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        ),
        (
            "api.core.v1.PodTemplateSpec",
            "spec",
            "",
            None,
            s("api.core.v1.PodSpec"),
        ),
        (
            "api.core.v1.PodSpec",
            "containers",
            "merge",
            Some("name"),
            s("api.core.v1.Container"),
        ),
        (
            "api.core.v1.PodSpec",
            "initContainers",
            "merge",
            Some("name"),
            s("api.core.v1.Container"),
        ),
        (
            "api.core.v1.PodSpec",
            "volumes",
            "merge,retainKeys",
            Some("name"),
            s("api.core.v1.Volume"),
        ),
        (
            "api.core.v1.PodSpec",
            "tolerations",
            "",
            None,
            s("api.core.v1.Toleration"),
        ),
        (
            "api.core.v1.PodSpec",
            "imagePullSecrets",
            "merge",
            Some("name"),
            s("api.core.v1.LocalObjectReference"),
        ),
        (
            "api.core.v1.PodSpec",
            "nodeSelector",
            "",
            None,
            strings.clone(),
        ),
        (
            "api.core.v1.Container",
            "ports",
            "merge",
            Some("containerPort"),
            s("api.core.v1.ContainerPort"),
        ),
        (
            "api.core.v1.Container",
            "env",
            "merge",
            Some("name"),
            s("api.core.v1.EnvVar"),
        ),
        (
            "api.core.v1.Container",
            "volumeMounts",
            "merge",
            Some("mountPath"),
            s("api.core.v1.VolumeMount"),
        ),
        ("api.core.v1.Container", "args", "", None, Shape::Opaque),
        (
            "api.core.v1.Container",
            "resources",
            "",
            None,
            s("api.core.v1.ResourceRequirements"),
        ),
        (
            "api.core.v1.ResourceRequirements",
            "limits",
            "",
            None,
            strings.clone(),
        ),
        (
            "api.core.v1.Volume",
            "configMap",
            "",
            None,
            s("api.core.v1.ConfigMapVolumeSource"),
        ),
        (
            "api.core.v1.Volume",
            "emptyDir",
            "",
            None,
            s("api.core.v1.EmptyDirVolumeSource"),
        ),
        (
            "api.core.v1.Service",
            "metadata",
            "",
            None,
            s("apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        ),
        (
            "api.core.v1.Service",
            "spec",
            "",
            None,
            s("api.core.v1.ServiceSpec"),
        ),
        (
            "api.core.v1.ServiceSpec",
            "ports",
            "merge",
            Some("port"),
            s("api.core.v1.ServicePort"),
        ),
        (
            "api.core.v1.ServiceSpec",
            "selector",
            "",
            None,
            strings.clone(),
        ),
        (
            "api.policy.v1.PodDisruptionBudget",
            "spec",
            "",
            None,
            s("api.policy.v1.PodDisruptionBudgetSpec"),
        ),
        (
            "api.policy.v1.PodDisruptionBudgetSpec",
            "selector",
            "replace",
            None,
            s("apimachinery.pkg.apis.meta.v1.LabelSelector"),
        ),
    ];
    Table(
        rows.into_iter()
            .map(|(def, field, strategy, key, shape)| {
                let strategies = strategy
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                (
                    (format!("io.k8s.{def}"), field.to_string()),
                    FieldMeta {
                        strategies,
                        merge_key: key.map(String::from),
                        shape,
                    },
                )
            })
            .collect(),
    )
}

impl PatchMeta for Table {
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        self.0
            .get(&(definition.to_string(), field.to_string()))
            .cloned()
    }
}

fn apply(kind: &str, original: Value, patch: Value) -> Result<Value, StrategicError> {
    apply_strategic(&original, &patch, &table(), kind)
}

/// A Deployment whose pod template has `spec`.
fn deploy(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

struct Case {
    name: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    want: Result<Value, StrategicError>,
}

fn ok(name: &'static str, kind: &'static str, original: Value, patch: Value, want: Value) -> Case {
    Case {
        name,
        kind,
        original,
        patch,
        want: Ok(want),
    }
}

fn err(
    name: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    want: StrategicError,
) -> Case {
    Case {
        name,
        kind,
        original,
        patch,
        want: Err(want),
    }
}

/// Runs every case against the test table and against the built-in (OpenAPI) metadata.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let table = table();
    let metas: [(&str, &dyn PatchMeta); 2] = [("table", &table), ("builtin", builtin_meta())];
    for c in cases {
        for (which, meta) in metas {
            let got = apply_strategic(&c.original, &c.patch, meta, c.kind);
            if got != c.want {
                failures.push(format!(
                    "{} ({which}):\n  patch: {}\n  want:  {:?}\n  got:   {:?}",
                    c.name, c.patch, c.want, got
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn test_table_agrees_with_the_builtin_metadata() {
    let builtin = builtin_meta();
    for ((def, field), want) in &table().0 {
        assert_eq!(
            PatchMeta::field(builtin, def, field).as_ref(),
            Some(want),
            "{def}.{field}"
        );
    }
    assert_eq!(
        kind_definition("apps", "v1", "Deployment"),
        Some(DEPLOYMENT)
    );
    assert_eq!(kind_definition("", "v1", "Service"), Some(SERVICE));
    assert_eq!(
        kind_definition("autoscaling", "v1", "Scale"),
        Some("io.k8s.api.autoscaling.v1.Scale")
    );
    assert_eq!(kind_definition("example.com", "v1", "Widget"), None);
}

fn two_containers() -> Value {
    deploy(json!({"containers": [
        {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "b", "image": "y:1"},
    ]}))
}

#[test]
fn maps_merge_recursively_and_null_deletes() {
    run(vec![
        ok(
            "labels merge, null deletes a label",
            DEPLOYMENT,
            json!({"metadata": {"name": "d", "labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"b": null, "c": "3"}}}),
            json!({"metadata": {"name": "d", "labels": {"a": "1", "c": "3"}}}),
        ),
        ok(
            "null deletes a whole field",
            DEPLOYMENT,
            json!({"spec": {"replicas": 2, "paused": true}}),
            json!({"spec": {"paused": null}}),
            json!({"spec": {"replicas": 2}}),
        ),
        ok(
            "null for a missing key is ignored",
            DEPLOYMENT,
            json!({"spec": {"replicas": 2}}),
            json!({"spec": {"paused": null}}),
            json!({"spec": {"replicas": 2}}),
        ),
        ok(
            "a new map loses its nulls",
            DEPLOYMENT,
            json!({"metadata": {"name": "d"}}),
            json!({"metadata": {"labels": {"a": "1", "b": null}}}),
            json!({"metadata": {"name": "d", "labels": {"a": "1"}}}),
        ),
        ok(
            "a scalar replaced by a map takes the patch",
            DEPLOYMENT,
            json!({"spec": {"x": "s"}}),
            json!({"spec": {"x": {"a": 1, "b": null}}}),
            json!({"spec": {"x": {"a": 1}}}),
        ),
        ok(
            "a field without metadata merges maps and replaces lists",
            DEPLOYMENT,
            json!({"spec": {"unknown": {"a": 1, "l": [1, 2]}}}),
            json!({"spec": {"unknown": {"b": 2, "l": [3]}}}),
            json!({"spec": {"unknown": {"a": 1, "l": [3], "b": 2}}}),
        ),
        ok(
            "a null patch changes nothing",
            DEPLOYMENT,
            json!({"spec": {"replicas": 1}}),
            Value::Null,
            json!({"spec": {"replicas": 1}}),
        ),
    ]);
}

#[test]
fn merge_lists_merge_by_their_keys() {
    run(vec![
        ok(
            "containers merge by name; new fields and changed image",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"name": "b", "image": "y:2", "args": ["-v"]}]})),
            deploy(json!({"containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "y:2", "args": ["-v"]},
            ]})),
        ),
        ok(
            "a new container goes before the original's remaining items",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            deploy(json!({"containers": [{"name": "c", "image": "z"}]})),
            deploy(
                json!({"containers": [{"name": "c", "image": "z"}, {"name": "a"}, {"name": "b"}]}),
            ),
        ),
        ok(
            "patch items keep the patch's order, original items interleave by original order",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
            deploy(
                json!({"containers": [{"name": "c", "image": "3"}, {"name": "a", "image": "1"}]}),
            ),
            deploy(
                json!({"containers": [{"name": "b"}, {"name": "c", "image": "3"}, {"name": "a", "image": "1"}]}),
            ),
        ),
        ok(
            "ports merge by containerPort",
            DEPLOYMENT,
            two_containers(),
            deploy(
                json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}),
            ),
            deploy(json!({"containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "b", "image": "y:1"},
            ]})),
        ),
        ok(
            "env merges by name",
            DEPLOYMENT,
            two_containers(),
            deploy(
                json!({"containers": [{"name": "a", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]}),
            ),
            deploy(json!({"containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]},
                {"name": "b", "image": "y:1"},
            ]})),
        ),
        ok(
            "volumes merge by name, volumeMounts by mountPath",
            DEPLOYMENT,
            deploy(json!({
                "containers": [{"name": "a", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "c1"}}, {"name": "data", "emptyDir": {}}],
            })),
            deploy(json!({
                "containers": [{"name": "a", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "c2"}}],
            })),
            deploy(json!({
                "containers": [{"name": "a", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}, {"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "c2"}}, {"name": "data", "emptyDir": {}}],
            })),
        ),
        ok(
            "imagePullSecrets merge by name",
            DEPLOYMENT,
            deploy(json!({"imagePullSecrets": [{"name": "a"}]})),
            deploy(json!({"imagePullSecrets": [{"name": "b"}]})),
            deploy(json!({"imagePullSecrets": [{"name": "b"}, {"name": "a"}]})),
        ),
        ok(
            "Service ports merge by port",
            SERVICE,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}}),
        ),
        ok(
            "finalizers (merge strategy, scalars) become the union, new ones first",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
        ),
        ok(
            "a merge list new to the object is taken as it is",
            DEPLOYMENT,
            deploy(json!({})),
            deploy(json!({"containers": [{"name": "a", "env": [{"name": "X", "value": null}]}]})),
            deploy(json!({"containers": [{"name": "a", "env": [{"name": "X"}]}]})),
        ),
        ok(
            "ownerReferences merge by uid",
            DEPLOYMENT,
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": true}]}}),
        ),
    ]);
}

#[test]
fn lists_without_merge_strategy_are_replaced() {
    run(vec![
        ok(
            "tolerations have no patch strategy: replaced",
            DEPLOYMENT,
            deploy(json!({"tolerations": [{"key": "a", "operator": "Exists"}]})),
            deploy(json!({"tolerations": [{"key": "b", "operator": "Exists"}]})),
            deploy(json!({"tolerations": [{"key": "b", "operator": "Exists"}]})),
        ),
        ok(
            "container args are replaced",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a", "args": ["1", "2"]}]})),
            deploy(json!({"containers": [{"name": "a", "args": ["3"]}]})),
            deploy(json!({"containers": [{"name": "a", "args": ["3"]}]})),
        ),
        ok(
            "a replace-strategy map (PDB selector) is replaced",
            PDB,
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "minAvailable": 1}}),
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            json!({"spec": {"selector": {"matchLabels": {"b": "2"}}, "minAvailable": 1}}),
        ),
    ]);
}

#[test]
fn patch_directive_on_maps() {
    run(vec![
        ok(
            "$patch: replace replaces the map",
            DEPLOYMENT,
            json!({"spec": {"template": {"metadata": {"labels": {"a": "1", "b": "2"}}}}}),
            json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}}}),
            json!({"spec": {"template": {"metadata": {"labels": {"c": "3"}}}}}),
        ),
        ok(
            "$patch: delete empties the map",
            DEPLOYMENT,
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "replicas": 1}}),
            json!({"spec": {"selector": {"$patch": "delete"}}}),
            json!({"spec": {"selector": {}, "replicas": 1}}),
        ),
        ok(
            "a new map carrying $patch is dropped",
            DEPLOYMENT,
            json!({"spec": {"replicas": 1}}),
            json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"a": "1"}}}}),
            json!({"spec": {"replicas": 1}}),
        ),
        ok(
            "$patch: replace at the root replaces the object",
            DEPLOYMENT,
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}}),
            json!({"$patch": "replace", "metadata": {"name": "d"}}),
            json!({"metadata": {"name": "d"}}),
        ),
        err(
            "$patch: merge is not a map directive",
            DEPLOYMENT,
            json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
            json!({"spec": {"selector": {"$patch": "merge", "matchLabels": {"b": "2"}}}}),
            StrategicError::Failed(
                "unknown patch type: merge in map: map[$patch:merge matchLabels:map[b:2]]".into(),
            ),
        ),
        err(
            "an unknown $patch value",
            DEPLOYMENT,
            json!({"spec": {}}),
            json!({"spec": {"$patch": 1}}),
            StrategicError::Failed("unknown patch type: %!s(int64=1) in map: map[$patch:1]".into()),
        ),
    ]);
}

#[test]
fn patch_directive_on_list_items() {
    run(vec![
        ok(
            "$patch: delete removes the item with that merge key",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"name": "b", "$patch": "delete"}]})),
            deploy(json!({"containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            ]})),
        ),
        ok(
            "$patch: delete of an env var inside a merged container",
            DEPLOYMENT,
            two_containers(),
            deploy(
                json!({"containers": [{"name": "a", "env": [{"name": "A", "$patch": "delete"}]}]}),
            ),
            deploy(json!({"containers": [
                {"name": "a", "image": "x:1", "ports": [{"containerPort": 80}], "env": [{"name": "B", "value": "2"}]},
                {"name": "b", "image": "y:1"},
            ]})),
        ),
        ok(
            "a $patch: replace item replaces the whole list",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"$patch": "replace"}, {"name": "z", "image": "z:1"}]})),
            deploy(json!({"containers": [{"name": "z", "image": "z:1"}]})),
        ),
        err(
            "a $patch: merge item is refused",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"$patch": "merge"}]})),
            StrategicError::Failed(messages::MERGING_LISTS_NOT_SPECIFIABLE.into()),
        ),
        err(
            "$patch: delete without the merge key",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"$patch": "delete", "image": "x"}]})),
            StrategicError::Failed(
                "map: map[$patch:delete image:x] does not contain declared merge key: name".into(),
            ),
        ),
        err(
            "an item without the merge key",
            DEPLOYMENT,
            two_containers(),
            deploy(json!({"containers": [{"image": "x:2"}]})),
            StrategicError::Failed(
                "map: map[image:x:2] does not contain declared merge key: name".into(),
            ),
        ),
    ]);
}

#[test]
fn retain_keys_clears_the_other_keys() {
    let rolling = json!({"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    run(vec![
        ok(
            "Deployment strategy RollingUpdate -> Recreate (kubectl apply's patch)",
            DEPLOYMENT,
            rolling.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
            json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}}),
        ),
        ok(
            "keys missing from $retainKeys go even when the patch does not name them",
            DEPLOYMENT,
            rolling.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}}),
        ),
        ok(
            "retained keys still merge",
            DEPLOYMENT,
            rolling.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"], "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}}}),
        ),
        ok(
            "a volume source switch with $retainKeys",
            DEPLOYMENT,
            deploy(json!({"volumes": [{"name": "v", "configMap": {"name": "c"}}]})),
            deploy(
                json!({"volumes": [{"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {}}]}),
            ),
            deploy(json!({"volumes": [{"name": "v", "emptyDir": {}}]})),
        ),
        err(
            "$retainKeys must be a list",
            DEPLOYMENT,
            rolling.clone(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            StrategicError::BadRequest(messages::BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.into()),
        ),
        err(
            "the patch may only set retained keys",
            DEPLOYMENT,
            rolling,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}),
            StrategicError::BadRequest(messages::BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.into()),
        ),
    ]);
}

#[test]
fn set_element_order_orders_merged_lists() {
    run(vec![
        ok(
            "reorder without changing items",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})),
            deploy(json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})),
            deploy(json!({"containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})),
        ),
        ok(
            "a new item placed where the order says",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            deploy(json!({
                "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}],
                "containers": [{"name": "new", "image": "n"}],
            })),
            deploy(json!({"containers": [{"name": "a"}, {"name": "new", "image": "n"}, {"name": "b"}]})),
        ),
        ok(
            "an item the order does not name goes before an ordered item the original had after it",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "server"}, {"name": "b"}]})),
            deploy(json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]})),
            deploy(json!({"containers": [{"name": "server"}, {"name": "b"}, {"name": "a"}]})),
        ),
        ok(
            "scalar list order",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
            json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
        ),
        ok(
            "a list new to the object, ordered",
            DEPLOYMENT,
            deploy(json!({})),
            deploy(json!({
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b"}, {"name": "a", "$patch": "delete"}],
            })),
            deploy(json!({"containers": [{"name": "b"}]})),
        ),
        err(
            "patch items out of the order's sequence",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}, {"name": "b"}]})),
            deploy(json!({
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "2"}, {"name": "a", "image": "1"}],
            })),
            StrategicError::Failed(
                "the order in patch list:\n[map[image:2 name:b] map[image:1 name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]".into(),
            ),
        ),
        err(
            "the order must be a list",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}]})),
            deploy(json!({"$setElementOrder/containers": {"name": "a"}})),
            StrategicError::Failed(
                "expected a []interface {}, but received a map[string]interface {}".into(),
            ),
        ),
        err(
            "a malformed $setElementOrder key",
            DEPLOYMENT,
            deploy(json!({"containers": [{"name": "a"}]})),
            deploy(json!({"$setElementOrdercontainers": []})),
            StrategicError::BadRequest(messages::BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST.into()),
        ),
    ]);
}

#[test]
fn delete_from_primitive_list() {
    run(vec![
        ok(
            "values are removed from the scalar list",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        ok(
            "with additions and an order, as kubectl apply sends them",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["a", "d"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["d"],
            }}),
            json!({"metadata": {"finalizers": ["a", "d"]}}),
        ),
        ok(
            "a deletion list for a missing field changes nothing",
            DEPLOYMENT,
            json!({"metadata": {"name": "d"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {"name": "d"}}),
        ),
        err(
            "a malformed key",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
            StrategicError::BadRequest(messages::BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST.into()),
        ),
    ]);
}

#[test]
fn malformed_lists_and_patches() {
    run(vec![
        err(
            "lists of lists",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": [["a"]]}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
            StrategicError::Unprocessable(messages::NO_LIST_OF_LISTS.into()),
        ),
        err(
            "mixed element types",
            DEPLOYMENT,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}}),
            StrategicError::Failed("list element types are not identical: [[a] [1]]".into()),
        ),
        err(
            "a patch that is not an object",
            DEPLOYMENT,
            json!({}),
            json!([1]),
            StrategicError::BadRequest(
                "json: cannot unmarshal array into Go value of type map[string]interface {}".into(),
            ),
        ),
    ]);
}

/// The patch kubectl 1.33 sends when a re-applied manifest drops container `b`, changes
/// env `A` and adds port 8080 to container `a` (computed by kubectl from the
/// last-applied annotation).
#[test]
fn kubectl_apply_three_way_patch() {
    let live = deploy(json!({
        "containers": [
            {"name": "a", "image": "x:1", "ports": [{"containerPort": 80, "protocol": "TCP"}], "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "imagePullPolicy": "IfNotPresent"},
            {"name": "b", "image": "y:1", "imagePullPolicy": "IfNotPresent"},
        ],
        "restartPolicy": "Always",
    }));
    let patch = deploy(json!({
        "$setElementOrder/containers": [{"name": "a"}],
        "containers": [
            {
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8080}],
                "env": [{"name": "A", "value": "10"}],
                "name": "a",
                "ports": [{"containerPort": 8080}],
            },
            {"$patch": "delete", "name": "b"},
        ],
    }));
    let want = deploy(json!({
        "containers": [
            {"name": "a", "image": "x:1", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080}], "env": [{"name": "A", "value": "10"}, {"name": "B", "value": "2"}], "imagePullPolicy": "IfNotPresent"},
        ],
        "restartPolicy": "Always",
    }));
    assert_eq!(
        apply(DEPLOYMENT, live.clone(), patch.clone()),
        Ok(want.clone())
    );
    assert_eq!(
        apply_strategic(&live, &patch, builtin_meta(), DEPLOYMENT),
        Ok(want)
    );
}

#[test]
fn original_is_left_alone() {
    let original = two_containers();
    let before = original.clone();
    let patch = deploy(json!({"containers": [{"name": "a", "image": "x:2"}]}));
    let got = apply_strategic(&original, &patch, &table(), DEPLOYMENT).expect("patch");
    assert_eq!(original, before);
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"][0]["image"],
        "x:2"
    );
}

#[test]
fn go_formatting_matches_kubernetes_messages() {
    assert_eq!(gofmt::value(&json!(1.5)), "1.5");
    assert_eq!(gofmt::value(&json!(1_000_000.0)), "1e+06");
    assert_eq!(gofmt::value(&json!(123_456.0)), "123456");
    assert_eq!(gofmt::value(&json!(0.00001)), "1e-05");
    assert_eq!(gofmt::value(&json!(null)), "<nil>");
    assert_eq!(
        gofmt::value(&json!({"b": [1, "x"], "a": {"c": true}})),
        "map[a:map[c:true] b:[1 x]]"
    );
    assert_eq!(gofmt::verb_s(&json!(true)), "%!s(bool=true)");
}

#[test]
fn dedup_matches_kubernetes() {
    assert_eq!(
        dedup_scalars(vec![json!("a"), json!("b"), json!("a"), json!("c")]),
        vec![json!("a"), json!("b"), json!("c")]
    );
    assert_eq!(
        dedup_scalars(vec![json!(1), json!(1), json!(1)]),
        vec![json!(1)]
    );
}

#[test]
fn strategies_split_like_kubernetes() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(patch_strategy(&v(&[])), Ok((false, String::new())));
    assert_eq!(patch_strategy(&v(&["merge"])), Ok((false, "merge".into())));
    assert_eq!(
        patch_strategy(&v(&["retainKeys"])),
        Ok((true, String::new()))
    );
    assert_eq!(
        patch_strategy(&v(&["merge", "retainKeys"])),
        Ok((true, "merge".into()))
    );
    assert_eq!(
        patch_strategy(&v(&["merge", "replace"])),
        Err(StrategicError::Failed(
            "unexpected patch strategy: [merge replace]".into()
        ))
    );
}
