use super::*;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::EndpointConditions;

fn meta(max: usize) -> SliceMeta {
    SliceMeta {
        namespace: "n".into(),
        generate_name: "web-".into(),
        labels: BTreeMap::from([
            ("kubernetes.io/service-name".to_string(), "web".to_string()),
            (
                "endpointslice.kubernetes.io/managed-by".to_string(),
                "endpointslice-controller.k8s.io".to_string(),
            ),
        ]),
        owner: OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: "web".into(),
            uid: "svc-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        address_type: "IPv4".into(),
        max,
    }
}

fn http() -> Vec<EndpointPort> {
    vec![EndpointPort {
        name: Some("http".into()),
        port: Some(8080),
        protocol: Some("TCP".into()),
        app_protocol: None,
    }]
}

fn ep(i: usize, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![format!("10.0.{:03}.{:03}", i / 250, i % 250)],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("n".into()),
            name: Some(format!("pod-{i}")),
            uid: Some(format!("uid-{i}")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn desired(range: std::ops::Range<usize>) -> Desired {
    let mut d = Desired::default();
    for i in range {
        d.add(http(), ep(i, true));
    }
    d
}

/// Gives planned creations names, as the apiserver would, and returns the stored slices.
fn apply(existing: Vec<EndpointSlice>, plan: Plan) -> Vec<EndpointSlice> {
    let deleted: Vec<_> = plan
        .delete
        .iter()
        .map(|s| s.metadata.name.clone())
        .collect();
    let updated: BTreeMap<_, _> = plan
        .update
        .iter()
        .map(|s| (s.metadata.name.clone(), s.clone()))
        .collect();
    let mut out: Vec<EndpointSlice> = existing
        .into_iter()
        .filter(|s| !deleted.contains(&s.metadata.name))
        .map(|s| updated.get(&s.metadata.name).cloned().unwrap_or(s))
        .collect();
    for (i, mut s) in plan.create.into_iter().enumerate() {
        s.metadata.name = Some(format!("web-new{}-{i}", out.len()));
        out.push(s);
    }
    out
}

fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut v: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    v.sort();
    v
}

#[test]
fn endpoints_are_split_into_slices_of_at_most_max() {
    let m = meta(100);
    let p = plan(Vec::new(), desired(0..250), &m);
    assert_eq!(p.create.len(), 3);
    assert!(p.update.is_empty() && p.delete.is_empty());
    let stored = apply(Vec::new(), p);
    assert_eq!(sizes(&stored), [50, 100, 100]);
    for s in &stored {
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(
            s.metadata
                .owner_references
                .as_ref()
                .map(|o| o[0].uid.as_str()),
            Some("svc-uid")
        );
        assert_eq!(s.ports.as_deref(), Some(http().as_slice()));
    }
    // The same state again: nothing to write.
    assert!(plan(stored, desired(0..250), &m).is_empty());
}

#[test]
fn one_changed_endpoint_rewrites_only_its_slice() {
    let m = meta(100);
    let stored = apply(Vec::new(), plan(Vec::new(), desired(0..250), &m));
    let mut d = desired(0..250);
    d.add(http(), ep(7, false));
    let p = plan(stored.clone(), d, &m);
    assert_eq!(p.update.len(), 1);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert!(
        p.update[0]
            .endpoints
            .iter()
            .any(|e| e.addresses == ep(7, false).addresses
                && e.conditions.as_ref().and_then(|c| c.ready) == Some(false))
    );
}

#[test]
fn new_endpoints_fill_an_unchanged_slice_before_a_new_one() {
    let m = meta(100);
    let stored = apply(Vec::new(), plan(Vec::new(), desired(0..250), &m));
    // 30 more fit into the slice holding 50.
    let p = plan(stored.clone(), desired(0..280), &m);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].endpoints.len(), 80);
    // 150 more do not: one new full slice and the rest into the 50-slice.
    let p = plan(stored, desired(0..400), &m);
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].endpoints.len(), 100);
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].endpoints.len(), 100);
}

#[test]
fn removed_endpoints_shrink_and_empty_slices_go() {
    let m = meta(100);
    let stored = apply(Vec::new(), plan(Vec::new(), desired(0..150), &m));
    assert_eq!(sizes(&stored), [50, 100]);
    // Drop the 50 in the second slice: that slice is deleted, the other untouched.
    let p = plan(stored.clone(), desired(0..100), &m);
    assert_eq!(p.delete.len(), 1);
    assert!(p.update.is_empty() && p.create.is_empty());
    // A delete and a create at once become one update.
    let mut d = desired(0..100);
    for i in 1000..1060 {
        d.add(http(), ep(i, true));
    }
    let p = plan(stored, d, &m);
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].endpoints.len(), 60);
}

#[test]
fn a_service_without_endpoints_keeps_one_placeholder() {
    let m = meta(100);
    let p = plan(Vec::new(), Desired::default(), &m);
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
    assert_eq!(p.create[0].ports.as_deref(), Some(&[][..]));
    let stored = apply(Vec::new(), p);
    // Stable: the placeholder is not recreated.
    assert!(plan(stored.clone(), Desired::default(), &m).is_empty());
    // Endpoints arrive: the placeholder is rewritten, not deleted and created.
    let p = plan(stored.clone(), desired(0..3), &m);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].metadata.name, stored[0].metadata.name);
    // And they leave again: back to a placeholder in the same slice.
    let stored = apply(stored, p);
    let p = plan(stored.clone(), Desired::default(), &m);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    assert!(p.update[0].endpoints.is_empty());
}

#[test]
fn port_changes_move_endpoints_to_matching_slices() {
    let m = meta(100);
    let stored = apply(Vec::new(), plan(Vec::new(), desired(0..10), &m));
    let mut d = Desired::default();
    let other = vec![EndpointPort {
        name: Some("http".into()),
        port: Some(9090),
        protocol: Some("TCP".into()),
        app_protocol: None,
    }];
    for i in 0..10 {
        d.add(other.clone(), ep(i, true));
    }
    let p = plan(stored, d, &m);
    // The old slice is rewritten with the new ports.
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update[0].ports.as_deref(), Some(other.as_slice()));
    assert_eq!(p.update[0].endpoints.len(), 10);
}

#[test]
fn label_changes_update_without_touching_endpoints() {
    let m = meta(100);
    let stored = apply(Vec::new(), plan(Vec::new(), desired(0..10), &m));
    let mut m2 = m.clone();
    m2.labels.insert("tier".into(), "fe".into());
    let p = plan(stored, desired(0..10), &m2);
    assert_eq!(p.update.len(), 1);
    assert_eq!(
        p.update[0]
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("fe")
    );
}
