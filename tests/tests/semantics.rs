//! API semantics through kube-rs, the client library kadm's own components use:
//! resourceVersion, generation, generateName, finalizers, lists, selectors, watches,
//! and the binding and scale subresources.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kadm_e2e::{Options, TestCluster, WAIT};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap_or_else(|e| panic!("configmap {name}: {e}"))
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            },
        },
    }))
    .unwrap_or_else(|e| panic!("deployment {name}: {e}"))
}

fn rv<K: kube::Resource>(o: &K) -> i64 {
    o.meta()
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no integer resourceVersion on {:?}", o.meta().name))
}

/// The HTTP code of a kube API error (`None` for other errors).
fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

async fn configmaps(cluster: &TestCluster, ns: &str) -> anyhow::Result<Api<ConfigMap>> {
    Ok(Api::namespaced(cluster.kube_client().await?, ns))
}

async fn create_namespace(cluster: &TestCluster, name: &str) -> anyhow::Result<()> {
    let nss: Api<Namespace> = Api::all(cluster.kube_client().await?);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    Ok(())
}

/// etcd's `mod_revision` of a key, read with etcdctl.
async fn etcd_mod_revision(cluster: &TestCluster, key: &str) -> anyhow::Result<i64> {
    let out = cluster.etcdctl(&["get", key, "-w", "json"]).await?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v["kvs"][0]["mod_revision"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no kv for {key}: {v}"))
}

#[tokio::test]
async fn resource_version_increases_and_equals_the_etcd_mod_revision() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    let key = "/registry/configmaps/default/rv";
    let created = cms
        .create(&PostParams::default(), &cm("rv", json!({})))
        .await?;
    assert_eq!(rv(&created), etcd_mod_revision(&cluster, key).await?);

    let mut next = created.clone();
    next.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms.replace("rv", &PostParams::default(), &next).await?;
    assert!(rv(&updated) > rv(&created));
    assert_eq!(rv(&updated), etcd_mod_revision(&cluster, key).await?);

    let patched = cms
        .patch(
            "rv",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await?;
    assert!(rv(&patched) > rv(&updated));
    assert_eq!(rv(&patched), etcd_mod_revision(&cluster, key).await?);
    assert_eq!(rv(&cms.get("rv").await?), rv(&patched));

    // A list is served at etcd's current revision, never older than what was written.
    let list = cms.list(&ListParams::default()).await?;
    let list_rv: i64 = list
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or("0")
        .parse()?;
    assert!(list_rv >= rv(&patched));

    // A no-op update writes nothing and keeps the resourceVersion.
    let same = cms.replace("rv", &PostParams::default(), &patched).await?;
    assert_eq!(rv(&same), rv(&patched));
    Ok(())
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only_and_status_and_spec_writes_stay_apart()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let deploys: Api<Deployment> = Api::namespaced(cluster.kube_client().await?, "default");
    let d = deploys
        .create(&PostParams::default(), &deployment("web", 1))
        .await?;
    assert_eq!(d.metadata.generation, Some(1));
    assert!(
        d.status.is_none(),
        "status is not settable on create: {:?}",
        d.status
    );

    // A status write with a different spec in the body changes only status.
    let mut status_body = d.clone();
    if let Some(spec) = status_body.spec.as_mut() {
        spec.replicas = Some(9);
    }
    status_body.status = serde_json::from_value(json!({"replicas": 3, "observedGeneration": 1}))?;
    let after_status = deploys
        .replace_status("web", &PostParams::default(), &status_body)
        .await?;
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_eq!(after_status.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        after_status.status.as_ref().and_then(|s| s.replicas),
        Some(3)
    );

    // A spec write bumps generation and keeps status, even if the body tries to change it.
    let after_spec = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"replicas": 7}})),
        )
        .await?;
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(after_spec.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(after_spec.status.as_ref().and_then(|s| s.replicas), Some(3));

    // Metadata-only and status patches leave generation alone.
    let labeled = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await?;
    assert_eq!(labeled.metadata.generation, Some(2));
    let status_patched = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await?;
    assert_eq!(status_patched.metadata.generation, Some(2));
    assert_eq!(
        status_patched
            .status
            .as_ref()
            .and_then(|s| s.observed_generation),
        Some(2)
    );
    assert_eq!(
        status_patched.spec.as_ref().and_then(|s| s.replicas),
        Some(2)
    );
    Ok(())
}

#[tokio::test]
async fn generate_name_appends_a_random_suffix() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    let template: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}}))?;
    let a = cms.create(&PostParams::default(), &template).await?;
    let b = cms.create(&PostParams::default(), &template).await?;
    let (a, b) = (
        a.metadata.name.unwrap_or_default(),
        b.metadata.name.unwrap_or_default(),
    );
    assert!(a.starts_with("gen-") && a.len() == "gen-".len() + 5, "{a}");
    assert!(b.starts_with("gen-") && b.len() == "gen-".len() + 5, "{b}");
    assert_ne!(a, b);
    cms.get(&a).await?;
    Ok(())
}

#[tokio::test]
async fn finalizer_holds_deletion_until_it_is_removed() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )?;
    cms.create(&PostParams::default(), &held).await?;

    let answer = cms.delete("held", &DeleteParams::default()).await?;
    let marked = answer
        .left()
        .expect("the object comes back while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still = cms.get("held").await?;
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(
        still.metadata.finalizers,
        Some(vec!["example.com/hold".to_string()])
    );

    // No new finalizers on an object that is going away.
    let err = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            ),
        )
        .await
        .expect_err("adding a finalizer while deleting");
    assert_eq!(api_code(&err), Some(422), "{err}");

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    let gone = cms
        .get("held")
        .await
        .expect_err("deleted once the finalizer is gone");
    assert_eq!(api_code(&gone), Some(404), "{gone}");
    Ok(())
}

#[tokio::test]
async fn create_into_a_missing_namespace_is_404() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "missing").await?;
    let err = cms
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .expect_err("no namespace");
    match &err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404, "{s:?}");
            assert_eq!(s.reason, "NotFound", "{s:?}");
            assert_eq!(s.message, "namespaces \"missing\" not found", "{s:?}");
        }
        other => panic!("{other}"),
    }
    Ok(())
}

#[tokio::test]
async fn pagination_with_limit_and_continue_returns_each_configmap_once() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    create_namespace(&cluster, "pages").await?;
    let cms = configmaps(&cluster, "pages").await?;
    let mut want = BTreeSet::new();
    for i in 0..25 {
        let name = format!("cm-{i:02}");
        cms.create(&PostParams::default(), &cm(&name, json!({})))
            .await?;
        want.insert(name);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await?;
        pages += 1;
        assert!(page.items.len() <= 10);
        // Every page is served from the first page's snapshot.
        let page_rv = page.metadata.resource_version.clone();
        match &first_rv {
            None => {
                first_rv = page_rv;
                // Written after the first page: not part of this list.
                cms.create(&PostParams::default(), &cm("zz-late", json!({})))
                    .await?;
                assert_eq!(page.metadata.remaining_item_count, Some(15));
            }
            Some(r) => assert_eq!(page_rv.as_ref(), Some(r)),
        }
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
        anyhow::ensure!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), want);
    // A fresh list sees the late one.
    assert_eq!(cms.list(&ListParams::default()).await?.items.len(), 26);
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    cms.create(
        &PostParams::default(),
        &cm("web", json!({"tier": "web", "env": "prod"})),
    )
    .await?;
    cms.create(
        &PostParams::default(),
        &cm("db", json!({"tier": "db", "env": "prod"})),
    )
    .await?;
    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await?;
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        let mut v: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(cms.list(&ListParams::default().labels("tier=web")).await?),
        ["web"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier in (web,db)"))
                .await?
        ),
        ["db", "web"]
    );
    assert_eq!(
        names(cms.list(&ListParams::default().labels("!tier")).await?),
        ["plain"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("env=prod,tier!=web"))
                .await?
        ),
        ["db"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=db"))
                .await?
        ),
        ["db"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name!=db"))
                .await?
        ),
        ["plain", "web"]
    );
    assert_eq!(
        names(
            cms.list(
                &ListParams::default()
                    .fields("metadata.namespace=default")
                    .labels("env=prod")
            )
            .await?
        ),
        ["db", "web"]
    );
    let all: Api<ConfigMap> = Api::all(cluster.kube_client().await?);
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=kube-system"))
                .await?
        ),
        Vec::<String>::new()
    );
    let err = cms
        .list(&ListParams::default().fields("data.k=v"))
        .await
        .expect_err("unsupported field");
    assert_eq!(api_code(&err), Some(400), "{err}");
    Ok(())
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_added_modified_deleted_in_order() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await?;
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(30), &start)
        .await?
        .boxed();

    cms.create(&PostParams::default(), &cm("w", json!({})))
        .await?;
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await?;
    cms.delete("w", &DeleteParams::default()).await?;

    let mut events = Vec::new();
    while events.len() < 3 {
        let ev = tokio::time::timeout(WAIT, stream.try_next())
            .await
            .map_err(|_| anyhow::anyhow!("no watch event within {WAIT:?}; got {events:?}"))??
            .ok_or_else(|| anyhow::anyhow!("watch ended early; got {events:?}"))?;
        let (ty, obj) = match ev {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => anyhow::bail!("watch error: {e:?}"),
        };
        events.push((
            ty,
            obj.metadata.name.clone().unwrap_or_default(),
            rv(&obj),
            obj,
        ));
    }
    let kinds: Vec<(&str, &str)> = events.iter().map(|(t, n, _, _)| (*t, n.as_str())).collect();
    assert_eq!(kinds, [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]);
    assert!(
        events[0].2 < events[1].2 && events[1].2 < events[2].2,
        "resourceVersions increase"
    );
    assert_eq!(
        events[1]
            .3
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("changed")
    );
    Ok(())
}

#[tokio::test]
async fn runtime_watcher_lists_then_follows_changes() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    cms.create(&PostParams::default(), &cm("old", json!({})))
        .await?;
    for (strategy, config) in [
        ("list-watch", watcher::Config::default()),
        (
            "streaming-list",
            watcher::Config::default().streaming_lists(),
        ),
    ] {
        let new_name = format!("new-{strategy}");
        let mut stream = watcher(cms.clone(), config).boxed();
        let mut initial = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut created = false;
        let mut applied = false;
        loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{strategy}: timed out; initial {initial:?}"
            );
            let ev = tokio::time::timeout(WAIT, stream.try_next())
                .await
                .map_err(|_| anyhow::anyhow!("{strategy}: no event; initial {initial:?}"))??
                .ok_or_else(|| anyhow::anyhow!("{strategy}: watcher ended"))?;
            match ev {
                watcher::Event::Init => {}
                watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap_or_default()),
                watcher::Event::InitDone => {
                    assert!(
                        initial.contains(&"old".to_string()),
                        "{strategy}: {initial:?}"
                    );
                    if !created {
                        cms.create(&PostParams::default(), &cm(&new_name, json!({})))
                            .await?;
                        created = true;
                    }
                }
                watcher::Event::Apply(o)
                    if o.metadata.name.as_deref() == Some(new_name.as_str()) =>
                {
                    applied = true;
                    cms.delete(&new_name, &DeleteParams::default()).await?;
                }
                watcher::Event::Delete(o)
                    if o.metadata.name.as_deref() == Some(new_name.as_str()) =>
                {
                    assert!(applied, "{strategy}: delete before apply");
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_410_expired() -> anyhow::Result<()> {
    // Watches are served from the watch cache's window of recent changes, which etcd's
    // compaction does not shorten (as in Kubernetes); a window of two changes lets
    // `first` fall out of it the way compaction drops it from etcd.
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec!["--watch-cache-size=2".into()],
        ..Options::default()
    })
    .await?;
    let cms = configmaps(&cluster, "default").await?;
    let first = cms
        .create(&PostParams::default(), &cm("hist", json!({})))
        .await?;
    let mut last = first.clone();
    for i in 0..3 {
        last = cms
            .patch(
                "hist",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"k": i.to_string()}})),
            )
            .await?;
    }
    let out = cluster
        .etcdctl(&["compact", &rv(&last).to_string()])
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "compact: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let old = rv(&first).to_string();
    match cms.watch(&WatchParams::default().timeout(10), &old).await {
        Err(e) => assert_eq!(api_code(&e), Some(410), "{e}"),
        Ok(stream) => {
            let mut stream = stream.boxed();
            let first_event = tokio::time::timeout(WAIT, stream.next())
                .await
                .map_err(|_| anyhow::anyhow!("no answer to a watch from a compacted revision"))?;
            match first_event {
                Some(Ok(WatchEvent::Error(s))) => {
                    assert_eq!(s.code, 410, "{s:?}");
                    assert_eq!(s.reason, "Expired", "{s:?}");
                }
                Some(Err(e)) => assert_eq!(api_code(&e), Some(410), "{e}"),
                other => panic!("expected 410 Expired, got {other:?}"),
            }
        }
    }
    // An exact list at a compacted revision is refused the same way.
    let err = cms
        .list(
            &ListParams::default()
                .at(&old)
                .matching(kube::api::VersionMatch::Exact),
        )
        .await
        .expect_err("compacted list");
    assert_eq!(api_code(&err), Some(410), "{err}");
    // From the current revision, watching works.
    let now = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let fresh = cms.watch(&WatchParams::default().timeout(1), &now).await?;
    drop(fresh);
    Ok(())
}

#[tokio::test]
async fn watch_with_bookmarks_and_a_short_timeout_ends_on_time() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let cms = configmaps(&cluster, "default").await?;
    let now = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let started = Instant::now();
    // kube-rs' WatchParams ask for bookmarks by default (allowWatchBookmarks=true).
    let mut stream = cms
        .watch(&WatchParams::default().timeout(2), &now)
        .await?
        .boxed();
    let mut events = 0;
    while let Some(ev) = tokio::time::timeout(WAIT, stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("watch with timeoutSeconds=2 still open after {WAIT:?}"))?
    {
        match ev? {
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => anyhow::bail!("watch error: {e:?}"),
            other => anyhow::bail!("unexpected event {other:?}"),
        }
        events += 1;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "ended too early: {took:?} ({events} bookmarks)"
    );
    assert!(took < Duration::from_secs(6), "ended too late: {took:?}");
    Ok(())
}

#[tokio::test]
async fn pod_binding_sets_node_name_once_and_a_second_bind_is_409() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.kube_client().await?, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.node_name.clone()),
        None
    );
    let binding = |node: &str| {
        json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "p"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        })
    };
    let answer: Value = pods
        .create_subresource("binding", "p", &PostParams::default(), &binding("node-a"))
        .await?;
    assert_eq!(answer["status"], "Success", "{answer}");
    let bound = pods.get("p").await?;
    assert_eq!(
        bound.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-a")
    );
    let scheduled = bound
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .map(|c| c.status.clone());
    assert_eq!(scheduled.as_deref(), Some("True"));

    let err = pods
        .create_subresource::<Value, Value>(
            "binding",
            "p",
            &PostParams::default(),
            &binding("node-b"),
        )
        .await
        .expect_err("second bind");
    assert_eq!(api_code(&err), Some(409), "{err}");
    let still = pods.get("p").await?;
    assert_eq!(
        still.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some("node-a")
    );
    Ok(())
}

#[tokio::test]
async fn deployment_scale_subresource_reads_and_patches_replicas() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let deploys: Api<Deployment> = Api::namespaced(cluster.kube_client().await?, "default");
    deploys
        .create(&PostParams::default(), &deployment("scaled", 2))
        .await?;
    let scale = deploys.get_scale("scaled").await?;
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(scale.metadata.name.as_deref(), Some("scaled"));

    let patched = deploys
        .patch_scale(
            "scaled",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    assert_eq!(patched.spec.as_ref().and_then(|s| s.replicas), Some(5));
    let d = deploys.get("scaled").await?;
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(5));
    assert_eq!(d.metadata.generation, Some(2), "scaling is a spec change");
    assert_eq!(
        patched.metadata.resource_version,
        d.metadata.resource_version
    );
    let err = deploys
        .patch_scale(
            "scaled",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .expect_err("negative replicas");
    assert_eq!(api_code(&err), Some(422), "{err}");
    Ok(())
}

/// Regression: an events.k8s.io/v1 Event was validated in its stored core/v1 form as an
/// events.k8s.io Event, so every create failed with 400 "does not decode as Event".
#[tokio::test]
async fn events_k8s_io_events_are_created_and_read_back_as_core_events() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    create_namespace(&cluster, "ev").await?;
    let client = cluster.kube_client().await?;
    let new: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "ev");
    let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": "web.1"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "statefulset-controller",
        "reportingInstance": "host-1",
        "action": "Create",
        "reason": "SuccessfulCreate",
        "note": "create Pod web-0 in StatefulSet web successful",
        "type": "Normal",
        "regarding": {"apiVersion": "apps/v1", "kind": "StatefulSet", "namespace": "ev", "name": "web", "uid": "u-1"},
    }))?;
    let created = new.create(&PostParams::default(), &event).await?;
    assert_eq!(created.reason.as_deref(), Some("SuccessfulCreate"));
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "ev");
    let stored = core.get("web.1").await?;
    assert_eq!(
        stored.message.as_deref(),
        Some("create Pod web-0 in StatefulSet web successful")
    );
    assert_eq!(stored.involved_object.name.as_deref(), Some("web"));
    Ok(())
}
