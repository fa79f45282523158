use serde_json::{Value, json};

use super::*;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const NOW: &str = "2025-01-02T03:04:05Z";
const LATER: &str = "2025-01-02T03:05:00Z";

fn deployment_type() -> &'static Type {
    schema::root(DEPLOYMENT).expect("Deployment definition")
}

fn cx<'a>(ignored: &'a Set, now: &'a str) -> Context<'a> {
    Context {
        ty: deployment_type(),
        api_version: "apps/v1",
        subresource: "",
        ignored,
        now,
    }
}

fn fields_v1(paths: &[&[PathElement]]) -> Value {
    let mut s = Set::new();
    for p in paths {
        s.insert(p);
    }
    s.to_fields_v1()
}

fn f(name: &str) -> PathElement {
    PathElement::Field(name.to_string())
}

fn web_config(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no managedFields entry for {manager}: {obj:#}"))
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn new_object() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}})
}

fn applied(cx: &Context, live: &Value, config: &Value, manager: &str, force: bool) -> Value {
    apply(cx, live, config, manager, force)
        .unwrap_or_else(|e| panic!("apply by {manager}: {e:?}"))
        .object
}

// ---------------------------------------------------------------------------------------------
// fieldsV1

#[test]
fn fields_v1_encodes_members_children_and_self_like_kubernetes() {
    let item = PathElement::key(vec![("name".into(), json!("nginx"))]);
    let v = fields_v1(&[
        &[f("metadata"), f("labels")],
        &[f("metadata"), f("labels"), f("app")],
        &[f("spec"), f("replicas")],
        &[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            item.clone(),
        ],
        &[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            item.clone(),
            f("name"),
        ],
        &[
            f("spec"),
            f("template"),
            f("spec"),
            f("containers"),
            item,
            f("image"),
        ],
    ]);
    assert_eq!(
        serde_json::to_string(&v).expect("json"),
        r#"{"f:metadata":{"f:labels":{"f:app":{},".":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{},"f:name":{},".":{}}}}}}}"#
    );
}

#[test]
fn fields_v1_keys_values_and_indices() {
    let port = PathElement::key(vec![
        ("protocol".into(), json!("TCP")),
        ("containerPort".into(), json!(80)),
    ]);
    assert_eq!(port.encode(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
    assert_eq!(port.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
    let v = PathElement::Value(json!("a<b"));
    assert_eq!(v.encode(), r#"v:"a\u003cb""#);
    assert_eq!(v.to_string(), r#"[="a<b"]"#);
    assert_eq!(PathElement::Index(3).encode(), "i:3");
    assert_eq!(PathElement::Index(3).to_string(), "[3]");
    for pe in [port, v, PathElement::Index(3), f("x")] {
        assert_eq!(
            PathElement::decode(&pe.encode()).expect("decode"),
            Some(pe.clone())
        );
    }
    // Field names < keys < values < indices; sets sort numbers before strings.
    let mut s = Set::new();
    s.insert(&[PathElement::Index(0)]);
    s.insert(&[PathElement::Value(json!("b"))]);
    s.insert(&[PathElement::Value(json!(2))]);
    s.insert(&[f("z")]);
    assert_eq!(
        serde_json::to_string(&s.to_fields_v1()).expect("json"),
        r#"{"f:z":{},"v:2":{},"v:\"b\"":{},"i:0":{}}"#
    );
}

#[test]
fn fields_v1_decodes_kubectl_order_and_round_trips() {
    // kubectl prints "." first; the set is the same.
    let kubectl = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}}}}}}});
    let set = Set::from_fields_v1(&kubectl).expect("decode");
    assert!(set.has(&[f("metadata"), f("labels")]));
    assert!(set.has(&[f("metadata"), f("labels"), f("app")]));
    assert!(!set.has(&[f("metadata")]));
    let item = PathElement::key(vec![("name".into(), json!("nginx"))]);
    assert!(set.has(&[
        f("spec"),
        f("template"),
        f("spec"),
        f("containers"),
        item.clone()
    ]));
    let again = Set::from_fields_v1(&set.to_fields_v1()).expect("round trip");
    assert_eq!(again, set);
    assert_eq!(
        set.paths()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            ".metadata.labels",
            ".metadata.labels.app",
            ".spec.template.spec.containers[name=\"nginx\"]",
            ".spec.template.spec.containers[name=\"nginx\"].image",
        ]
    );
    // Unknown element types are skipped; malformed keys are errors.
    let s = Set::from_fields_v1(&json!({"x:what": {}, "f:a": {}})).expect("skip unknown");
    assert_eq!(s.paths().len(), 1);
    assert!(Set::from_fields_v1(&json!({"fa": {}})).is_err());
    assert!(Set::from_fields_v1(&json!({"k:{nope": {}})).is_err());
    assert!(Set::from_fields_v1(&json!([1])).is_err());
}

#[test]
fn set_algebra() {
    let a = Set::from_paths(&[
        Path::fields(&["a", "b"]),
        Path::fields(&["a", "c"]),
        Path::fields(&["d"]),
    ]);
    let b = Set::from_paths(&[Path::fields(&["a", "b"]), Path::fields(&["a"])]);
    assert_eq!(a.difference(&b).paths().len(), 2);
    assert_eq!(
        a.recursive_difference(&b).paths(),
        vec![Path::fields(&["d"])],
        "everything below a removed member goes"
    );
    assert_eq!(a.intersection(&b).paths(), vec![Path::fields(&["a", "b"])]);
    assert_eq!(a.union(&b).paths().len(), 4);
    assert!(a.difference(&a).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Field sets, merges, comparisons

#[test]
fn applied_configuration_field_set_is_kubernetes_shape() {
    let set = field_set_strict(&web_config(2), deployment_type()).expect("valid");
    let set = set.difference(stripped_fields());
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                        "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {"f:containerPort": {}, ".": {}}},
                        ".": {}
                    }}}
                }
            }
        })
    );
}

#[test]
fn schema_errors_name_the_path() {
    let mut bad = web_config(1);
    bad["spec"]["template"]["spec"]["containers"][0]["imagez"] = json!("x");
    bad["spec"]["bogus"] = json!(1);
    let e = field_set_strict(&bad, deployment_type()).expect_err("unknown fields");
    assert_eq!(
        e.to_string(),
        "errors:\n  .spec.template.spec.containers[name=\"web\"].imagez: field not declared in schema\n  .spec.bogus: field not declared in schema"
    );
    let dup =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
    assert_eq!(
        field_set_strict(&dup, deployment_type())
            .expect_err("dup")
            .to_string(),
        ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
    );
    let no_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
    assert_eq!(
        field_set_strict(&no_key, deployment_type())
            .expect_err("no key")
            .to_string(),
        ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
}

#[test]
fn merge_follows_list_and_map_types() {
    let ty = deployment_type();
    let live = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}},
    "spec": {
        "selector": {"matchLabels": {"app": "web", "old": "1"}},
        "template": {"spec": {
            "containers": [{"name": "a", "image": "a:1", "args": ["x", "y"]}, {"name": "b", "image": "b:1"}],
            "nodeSelector": {"disk": "ssd", "zone": "z1"}
        }}
    }});
    let config = json!({"metadata": {"finalizers": ["c", "a"], "labels": {"y": "2"}},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {
            "containers": [{"name": "c", "image": "c:1"}, {"name": "a", "args": ["z"]}],
            "nodeSelector": {"zone": "z2"}
        }}
    }});
    let m = merge(&live, &config, ty);
    // Sets: union; list maps: merged by key; new items where the configuration puts them.
    assert_eq!(m["metadata"]["finalizers"], json!(["c", "a", "b"]));
    assert_eq!(m["metadata"]["labels"], json!({"x": "1", "y": "2"}));
    assert_eq!(
        m["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "c:1"}, {"name": "a", "image": "a:1", "args": ["z"]}, {"name": "b", "image": "b:1"}])
    );
    // Atomic: LabelSelector (a struct marked atomic) and nodeSelector (an atomic map).
    assert_eq!(
        m["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        m["spec"]["template"]["spec"]["nodeSelector"],
        json!({"zone": "z2"})
    );
    // null unsets.
    let m = merge(
        &json!({"spec": {"replicas": 3, "paused": true}}),
        &json!({"spec": {"replicas": null}}),
        ty,
    );
    assert_eq!(m, json!({"spec": {"paused": true}}));
}

#[test]
fn compare_reports_added_modified_removed() {
    let ty = deployment_type();
    let old = json!({"spec": {"replicas": 1, "paused": true, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
    let new = json!({"spec": {"replicas": 2, "minReadySeconds": 5, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}}});
    let c = compare(&old, &new, ty);
    let s = |set: &Set| {
        set.paths()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(s(&c.modified), vec![".spec.replicas"]);
    assert_eq!(
        s(&c.added),
        vec![
            ".spec.minReadySeconds",
            ".spec.template.spec.containers[name=\"b\"]",
            ".spec.template.spec.containers[name=\"b\"].name"
        ]
    );
    assert_eq!(s(&c.removed), vec![".spec.paused"]);
}

// ---------------------------------------------------------------------------------------------
// Updates

#[test]
fn create_records_an_update_entry_shaped_like_kubectl_create() {
    let ignored = reset_fields(true, "");
    let cx = cx(&ignored, NOW);
    let created = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}], "restartPolicy": "Always"}
            }
        },
        "status": {"replicas": 9}
    });
    let mf = update(
        &cx,
        &zero_object(deployment_type()),
        &created,
        "kubectl-create",
    )
    .expect("entry");
    assert_eq!(
        mf,
        json!([{
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1", "time": NOW,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}, ".": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {"f:maxSurge": {}, "f:maxUnavailable": {}, ".": {}}, "f:type": {}},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}, ".": {}}},
                        "f:spec": {
                            "f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}, "f:name": {}, "f:resources": {}, ".": {}}},
                            "f:restartPolicy": {}
                        }
                    }
                }
            }
        }])
    );
}

#[test]
fn updates_move_changed_fields_and_merge_per_manager() {
    let ignored = reset_fields(true, "");
    let mut live = web_config(1);
    let mf = update(&cx(&ignored, NOW), &json!({}), &live, "kubectl-create");
    set_managed_fields(&mut live, mf);
    // An edit changes replicas: it moves to kubectl-edit.
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(5);
    let mf = update(&cx(&ignored, LATER), &live, &edited, "kubectl-edit");
    set_managed_fields(&mut edited, mf);
    let create = Set::from_fields_v1(&entry(&edited, "kubectl-create")["fieldsV1"]).expect("set");
    assert!(!create.has(&[f("spec"), f("replicas")]));
    assert!(create.has(&[f("spec"), f("selector")]));
    let edit = entry(&edited, "kubectl-edit");
    assert_eq!(edit["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(edit["time"], LATER);
    assert_eq!(
        entry(&edited, "kubectl-create")["time"],
        NOW,
        "untouched entries keep their time"
    );
    // A second edit by the same manager merges into its entry; a no-op write changes nothing.
    let mut again = edited.clone();
    again["spec"]["paused"] = json!(true);
    let mf = update(&cx(&ignored, LATER), &edited, &again, "kubectl-edit");
    set_managed_fields(&mut again, mf);
    assert_eq!(
        entry(&again, "kubectl-edit")["fieldsV1"],
        json!({"f:spec": {"f:paused": {}, "f:replicas": {}}})
    );
    let same = update(
        &cx(&ignored, "2030-01-01T00:00:00Z"),
        &again,
        &again,
        "other",
    );
    assert_eq!(same.as_ref(), again.pointer("/metadata/managedFields"));
    // Status changes through the main endpoint are nobody's.
    let mut st = again.clone();
    st["status"] = json!({"replicas": 3});
    let mf = update(&cx(&ignored, LATER), &again, &st, "sneaky").expect("entries");
    assert!(
        !mf.as_array()
            .expect("list")
            .iter()
            .any(|e| e["manager"] == "sneaky")
    );
}

#[test]
fn clients_may_rewrite_or_reset_managed_fields() {
    let ignored = reset_fields(true, "");
    let mut live = web_config(1);
    let mf = update(&cx(&ignored, NOW), &json!({}), &live, "creator");
    set_managed_fields(&mut live, mf);
    // A list the client sent replaces the record (kubectl's client-side → server-side migration).
    let mut rewritten = live.clone();
    let mut list = live["metadata"]["managedFields"].clone();
    list[0]["manager"] = json!("kubectl");
    list[0]["operation"] = json!("Apply");
    rewritten["metadata"]["managedFields"] = list;
    let mf = update(&cx(&ignored, LATER), &live, &rewritten, "kubectl-patch").expect("entries");
    assert_eq!(mf[0]["manager"], "kubectl");
    assert_eq!(mf[0]["operation"], "Apply");
    // `[{}]` clears it; an invalid list is ignored.
    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    assert_eq!(update(&cx(&ignored, LATER), &live, &reset, "x"), None);
    let mut invalid = live.clone();
    invalid["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Bogus"}]);
    assert_eq!(
        update(&cx(&ignored, LATER), &live, &invalid, "x").as_ref(),
        live.pointer("/metadata/managedFields")
    );
}

#[test]
fn update_entries_are_capped() {
    let ignored = Set::new();
    let mut obj =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    let ty = schema::root("io.k8s.api.core.v1.ConfigMap").expect("cm");
    for i in 0..12 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let now = format!("2025-01-01T00:00:{i:02}Z");
        let c = Context {
            ty,
            api_version: "v1",
            subresource: "",
            ignored: &ignored,
            now: &now,
        };
        let mf = update(&c, &obj, &next, &format!("m{i}"));
        set_managed_fields(&mut next, mf);
        obj = next;
    }
    let names: Vec<String> = managers(&obj).into_iter().map(|(m, _)| m).collect();
    assert_eq!(names.len(), MAX_UPDATE_MANAGERS);
    assert_eq!(names[0], ANCIENT_CHANGES);
    assert_eq!(
        entry(&obj, ANCIENT_CHANGES)["fieldsV1"],
        json!({"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}})
    );
    assert!(!names.contains(&"m0".to_string()) && names.contains(&"m11".to_string()));
}

// ---------------------------------------------------------------------------------------------
// Apply

#[test]
fn apply_creates_and_owns_exactly_the_configuration() {
    let ignored = reset_fields(true, "");
    let out = apply(
        &cx(&ignored, NOW),
        &new_object(),
        &web_config(2),
        "kubectl",
        false,
    )
    .expect("apply");
    assert!(out.changed);
    assert_eq!(out.object["spec"]["replicas"], 2);
    assert_eq!(
        managers(&out.object),
        vec![("kubectl".into(), "Apply".into())]
    );
    let e = entry(&out.object, "kubectl");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], NOW);
    assert!(e.get("subresource").is_none());
    // Same configuration again: nothing changes, not even the time.
    let again = apply(
        &cx(&ignored, LATER),
        &out.object,
        &web_config(2),
        "kubectl",
        false,
    )
    .expect("again");
    assert!(!again.changed);
    assert_eq!(again.object, out.object);
}

#[test]
fn apply_removes_fields_the_manager_stopped_applying() {
    let ignored = reset_fields(true, "");
    let mut config = web_config(2);
    config["metadata"]["labels"]["tier"] = json!("front");
    config["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "sidecar", "image": "busybox"}));
    config["spec"]["minReadySeconds"] = json!(7);
    let live = applied(&cx(&ignored, NOW), &new_object(), &config, "kubectl", false);
    // Someone else adds an annotation and a label (an update).
    let mut touched = live.clone();
    touched["metadata"]["annotations"] = json!({"note": "kept"});
    touched["metadata"]["labels"]["extra"] = json!("yes");
    let mf = update(&cx(&ignored, NOW), &live, &touched, "kubectl-label");
    set_managed_fields(&mut touched, mf);
    // The next apply drops the sidecar, a label, and minReadySeconds.
    let out = applied(
        &cx(&ignored, LATER),
        &touched,
        &web_config(2),
        "kubectl",
        false,
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{out:#}");
    assert_eq!(containers[0]["name"], "web");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "extra": "yes"})
    );
    assert_eq!(out["metadata"]["annotations"], json!({"note": "kept"}));
    assert!(out["spec"].get("minReadySeconds").is_none(), "{out:#}");
}

#[test]
fn apply_keeps_fields_another_manager_also_owns() {
    let ignored = reset_fields(true, "");
    let mut config = web_config(2);
    config["spec"]["minReadySeconds"] = json!(7);
    let live = applied(&cx(&ignored, NOW), &new_object(), &config, "a", false);
    // Manager b applies the same value: shared ownership, no conflict.
    let b_config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"minReadySeconds": 7}});
    let shared = applied(&cx(&ignored, NOW), &live, &b_config, "b", false);
    assert_eq!(
        entry(&shared, "b")["fieldsV1"],
        json!({"f:spec": {"f:minReadySeconds": {}}})
    );
    // a stops applying it: b still owns it, it stays.
    let out = applied(&cx(&ignored, LATER), &shared, &web_config(2), "a", false);
    assert_eq!(out["spec"]["minReadySeconds"], 7);
    let a = Set::from_fields_v1(&entry(&out, "a")["fieldsV1"]).expect("set");
    assert!(!a.has(&[f("spec"), f("minReadySeconds")]));
}

#[test]
fn conflicting_apply_is_refused_then_forced() {
    let ignored = reset_fields(true, "");
    let live = applied(
        &cx(&ignored, NOW),
        &new_object(),
        &web_config(2),
        "kubectl",
        false,
    );
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 5}});
    let err = apply(&cx(&ignored, LATER), &live, &other, "other", false).expect_err("conflict");
    let ApplyError::Conflicts(conflicts) = err else {
        panic!("not a conflict: {err:?}");
    };
    let e = conflict_error(&conflicts);
    assert_eq!(e.code, 409);
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    let status = e.to_status();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"kubectl\"", "field": ".spec.replicas"}])
    );
    // Forced: the field moves.
    let out = applied(&cx(&ignored, LATER), &live, &other, "other", true);
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(
        entry(&out, "other")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    let k = Set::from_fields_v1(&entry(&out, "kubectl")["fieldsV1"]).expect("set");
    assert!(!k.has(&[f("spec"), f("replicas")]));
    assert!(k.has(&[f("spec"), f("selector")]));
    // Now kubectl's next apply of replicas 2 conflicts with "other".
    let err =
        apply(&cx(&ignored, LATER), &out, &web_config(2), "kubectl", false).expect_err("conflict");
    let ApplyError::Conflicts(c) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflict_error(&c).message,
        "Apply failed with 1 conflict: conflict with \"other\": .spec.replicas"
    );
}

#[test]
fn conflicts_with_updaters_name_the_version_and_group_by_manager() {
    let ignored = reset_fields(true, "");
    let mut live = web_config(1);
    let mf = update(&cx(&ignored, NOW), &json!({}), &live, "kubectl-create");
    set_managed_fields(&mut live, mf);
    let mut config = web_config(3);
    config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let err = apply(&cx(&ignored, LATER), &live, &config, "ci", false).expect_err("conflicts");
    let ApplyError::Conflicts(c) = err else {
        panic!("{err:?}")
    };
    let e = conflict_error(&c);
    assert_eq!(
        e.message,
        "Apply failed with 2 conflicts: conflicts with \"kubectl-create\" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name=\"web\"].image"
    );
    assert_eq!(
        e.causes[1].field,
        ".spec.template.spec.containers[name=\"web\"].image"
    );
    assert_eq!(
        e.causes[1].message,
        "conflict with \"kubectl-create\" using apps/v1"
    );
}

#[test]
fn kubectl_server_side_apply_takes_over_from_client_side_apply() {
    let ignored = reset_fields(true, "");
    // A client-side apply: created with the annotation by kubectl-client-side-apply.
    let mut csa = web_config(2);
    let last = format!("{}\n", go_json(&csa));
    csa["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last});
    let mf = update(
        &cx(&ignored, NOW),
        &zero_object(deployment_type()),
        &csa,
        "kubectl-client-side-apply",
    );
    set_managed_fields(&mut csa, mf);
    // kubectl apply --server-side with replicas changed: no conflict for kubectl.
    let out = applied(
        &cx(&ignored, LATER),
        &csa,
        &web_config(4),
        KUBECTL_MANAGER,
        false,
    );
    assert_eq!(out["spec"]["replicas"], 4);
    let annotation = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
        .as_str()
        .expect("annotation kept");
    let recorded: Value = serde_json::from_str(annotation).expect("json");
    assert_eq!(
        recorded["spec"]["replicas"], 4,
        "annotation follows the applied configuration"
    );
    assert!(annotation.ends_with('\n'));
    // Another manager gets the conflict.
    assert!(matches!(
        apply(&cx(&ignored, LATER), &csa, &web_config(4), "someone", false),
        Err(ApplyError::Conflicts(_))
    ));
    // A field changed since the client-side apply is still a conflict for kubectl.
    let mut drifted = csa.clone();
    drifted["spec"]["replicas"] = json!(7);
    let mf = update(&cx(&ignored, LATER), &csa, &drifted, "kubectl-scale");
    set_managed_fields(&mut drifted, mf);
    assert!(matches!(
        apply(
            &cx(&ignored, LATER),
            &drifted,
            &web_config(4),
            KUBECTL_MANAGER,
            false
        ),
        Err(ApplyError::Conflicts(_))
    ));
}

#[test]
fn status_apply_owns_status_only() {
    let ignored = reset_fields(true, "status");
    let c = Context {
        subresource: "status",
        ..cx(&ignored, NOW)
    };
    let live = web_config(1);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 9}, "status": {"replicas": 1}});
    let out = applied(&c, &live, &config, "ctrl", false);
    let e = entry(&out, "ctrl");
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
}

#[test]
fn field_manager_names() {
    assert_eq!(
        manager_or_user_agent("", "kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(manager_or_user_agent("mine", "kubectl/v1.33.0"), "mine");
    assert!(validate_field_manager("ok").is_empty());
    assert_eq!(
        validate_field_manager(&"x".repeat(129))[0].reason,
        "FieldValueTooLong"
    );
    assert_eq!(
        validate_field_manager("a\u{7}")[0].reason,
        "FieldValueInvalid"
    );
    assert_eq!(Manager::update("", "v1", "").name, "unknown");
    assert_eq!(
        Manager::update("kubelet", "v1", "status").describe(),
        "\"kubelet\" with subresource \"status\" using v1"
    );
}

#[test]
fn set_items_and_atomic_lists_are_owned_as_their_types_say() {
    let ignored = reset_fields(true, "");
    let with = |finalizers: Value, args: Value| {
        let mut c = web_config(1);
        c["metadata"]["finalizers"] = finalizers;
        c["spec"]["template"]["spec"]["containers"][0]["args"] = args;
        c
    };
    let live = applied(
        &cx(&ignored, NOW),
        &new_object(),
        &with(json!(["a", "b"]), json!(["--x", "--y"])),
        "one",
        false,
    );
    let e = entry(&live, "one");
    assert!(owns_path(
        e,
        &[
            f("metadata"),
            f("finalizers"),
            PathElement::Value(json!("b"))
        ]
    ));
    let item = PathElement::key(vec![("name".into(), json!("web"))]);
    let args = [
        f("spec"),
        f("template"),
        f("spec"),
        f("containers"),
        item,
        f("args"),
    ];
    assert!(owns_path(e, &args), "an atomic list is one field");
    // Another applier adds a finalizer; the first drops "b" and changes the args.
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["c"]}});
    let live = applied(&cx(&ignored, NOW), &live, &other, "two", false);
    let out = applied(
        &cx(&ignored, LATER),
        &live,
        &with(json!(["a"]), json!(["--z"])),
        "one",
        false,
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--z"])
    );
}

fn owns_path(e: &Value, path: &[PathElement]) -> bool {
    Set::from_fields_v1(&e["fieldsV1"])
        .expect("fieldsV1")
        .has(path)
}
