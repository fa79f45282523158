//! Metadata-only responses (`PartialObjectMetadata`, `PartialObjectMetadataList`) against a
//! real etcd + kadm-apiserver, as kube-rs' metadata API, its `metadata_watcher` and
//! `Controller::owns` use them (client-go's metadata informers — Kubernetes' garbage
//! collector and namespace controller — ask the same way, with a protobuf entry first),
//! plus raw requests for Kubernetes' Accept fallbacks and its 406 for a kind that does not
//! fit the answer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use http::{Method, Request, header};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kadm_e2e::{TestCluster, WAIT};
use kube::api::{
    Api, ListParams, Patch, PatchParams, PostParams, VersionMatch, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const META_V1: &str = "meta.k8s.io/v1";
/// client-go's metadata client header for lists: protobuf first, which kadm does not
/// produce, then JSON metadata, then plain JSON.
const CLIENT_GO_LIST: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
const CLIENT_GO_GET: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

fn from_json<K: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<K> {
    serde_json::from_value(v).context("build a typed object")
}

fn configmap(name: &str, labels: Value, data: Value) -> anyhow::Result<ConfigMap> {
    from_json(json!({"metadata": {"name": name, "labels": labels,
        "annotations": {"note": format!("about {name}")}}, "data": data}))
}

async fn setup(ns: &str) -> anyhow::Result<(TestCluster, Client)> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": ns}}))?,
    )
    .await
    .with_context(|| format!("create namespace {ns}"))?;
    Ok((cluster, client))
}

/// Runs `fut` for at most [`WAIT`].
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(WAIT, fut)
        .await
        .with_context(|| format!("{what}: no answer within {}s", WAIT.as_secs()))
}

fn type_of<K>(p: &PartialObjectMeta<K>) -> (String, String) {
    p.types
        .as_ref()
        .map(|t| (t.api_version.clone(), t.kind.clone()))
        .unwrap_or_default()
}

fn ensure_partial<K>(p: &PartialObjectMeta<K>, what: &str) -> anyhow::Result<()> {
    ensure!(
        type_of(p) == (META_V1.to_string(), "PartialObjectMetadata".to_string()),
        "{what}: type {:?}",
        type_of(p)
    );
    Ok(())
}

/// A raw request through the kube client with a chosen `Accept` header.
async fn raw(
    client: &Client,
    method: Method,
    path: &str,
    accept: &str,
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::ACCEPT, accept)
        .body(kube::client::Body::from(Vec::new()))?;
    let resp = bounded(path, client.send(req)).await??;
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = bounded(path, resp.into_body().collect())
        .await?
        .context("read the body")?
        .to_bytes()
        .to_vec();
    Ok((status, ct, body))
}

async fn raw_json(client: &Client, path: &str, accept: &str) -> anyhow::Result<(u16, Value)> {
    let (status, ct, body) = raw(client, Method::GET, path, accept).await?;
    let v: Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "GET {path} ({accept}): {status} {ct} is not json: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    Ok((status, v))
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn kube_metadata_api_gets_lists_and_watches_metadata_only() -> anyhow::Result<()> {
    let ns = "pom";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        cms.create(
            &pp,
            &configmap(
                name,
                json!({"tier": tier}),
                json!({"big": "x".repeat(4096)}),
            )?,
        )
        .await
        .with_context(|| format!("create {name}"))?;
    }

    // get_metadata: the object's metadata exactly, as PartialObjectMetadata.
    let full = cms.get("a").await?;
    let meta = cms.get_metadata("a").await?;
    ensure_partial(&meta, "get_metadata")?;
    ensure!(
        meta.metadata == full.metadata,
        "get_metadata: {:?} != {:?}",
        meta.metadata,
        full.metadata
    );

    // list_metadata from the watch cache, with a selector.
    let list = cms.list_metadata(&ListParams::default()).await?;
    ensure!(
        list.types.kind == "PartialObjectMetadataList" && list.types.api_version == META_V1,
        "list type {:?}",
        list.types
    );
    ensure!(list.items.len() == 3, "{} items", list.items.len());
    for item in &list.items {
        ensure_partial(item, "list item")?;
    }
    ensure!(list.metadata.resource_version.is_some(), "list rv");
    let web = cms
        .list_metadata(&ListParams::default().labels("tier=web"))
        .await?;
    let web_names: Vec<String> = web.items.iter().map(|i| i.name_any()).collect();
    ensure!(web_names == ["a", "b"], "selected {web_names:?}");

    // A paginated list: the first page from the cache, the rest from etcd (continue).
    let page = cms.list_metadata(&ListParams::default().limit(2)).await?;
    ensure!(page.items.len() == 2, "page 1: {} items", page.items.len());
    ensure!(
        page.metadata.remaining_item_count == Some(1),
        "remainingItemCount {:?}",
        page.metadata.remaining_item_count
    );
    let token = page.metadata.continue_.clone().context("continue token")?;
    let rest = cms
        .list_metadata(&ListParams::default().limit(2).continue_token(&token))
        .await?;
    ensure!(
        rest.items.len() == 1 && rest.items[0].name_any() == "c",
        "page 2"
    );
    ensure_partial(&rest.items[0], "page 2 item (etcd)")?;
    ensure!(rest.metadata.continue_.is_none(), "last page has no token");
    // An exact-revision list (etcd) agrees with the cached one.
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let exact = cms
        .list_metadata(&ListParams::default().at(&rv).matching(VersionMatch::Exact))
        .await?;
    ensure!(
        exact.items.iter().map(|i| &i.metadata).collect::<Vec<_>>()
            == list.items.iter().map(|i| &i.metadata).collect::<Vec<_>>(),
        "exact list differs from the cached one"
    );

    // watch_metadata: changes as PartialObjectMetadata events.
    let mut events = cms
        .watch_metadata(&WatchParams::default().labels("tier=web"), &rv)
        .await?
        .boxed();
    let patched = cms
        .patch_metadata(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"changed": "yes"}}})),
        )
        .await?;
    ensure_partial(&patched, "patch_metadata answer")?;
    ensure!(
        patched.labels().get("changed").map(String::as_str) == Some("yes"),
        "patched labels {:?}",
        patched.labels()
    );
    cms.delete("b", &Default::default()).await?;
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = bounded("metadata watch event", events.try_next())
            .await??
            .context("watch ended")?;
        match ev {
            WatchEvent::Modified(m) => {
                ensure_partial(&m, "MODIFIED")?;
                ensure!(
                    m.labels().get("changed").map(String::as_str) == Some("yes"),
                    "modified labels"
                );
                seen.push(format!("MODIFIED {}", m.name_any()));
            }
            WatchEvent::Deleted(m) => {
                ensure_partial(&m, "DELETED")?;
                seen.push(format!("DELETED {}", m.name_any()));
            }
            WatchEvent::Bookmark(_) => {}
            other => bail!("unexpected event {other:?}"),
        }
    }
    ensure!(seen == ["MODIFIED a", "DELETED b"], "events {seen:?}");
    Ok(())
}

/// Runs a metadata watcher until it has delivered the initial state and then a change
/// of `changed`, which `change` makes once the initial state is in.
async fn watch_until_change(
    stream: impl futures::Stream<
        Item = Result<watcher::Event<PartialObjectMeta<ConfigMap>>, watcher::Error>,
    >,
    cms: &Api<ConfigMap>,
    changed: &str,
) -> anyhow::Result<Vec<String>> {
    let mut stream = std::pin::pin!(stream);
    let mut initial = Vec::new();
    let mut changed_once = false;
    for _ in 0..100 {
        let ev = bounded("metadata watcher", stream.try_next())
            .await??
            .context("watcher ended")?;
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(m) => {
                ensure_partial(&m, "InitApply")?;
                initial.push(m.name_any());
            }
            watcher::Event::InitDone => {
                cms.patch(
                    changed,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"seen": "later"}}})),
                )
                .await?;
                changed_once = true;
            }
            watcher::Event::Apply(m) if changed_once => {
                ensure_partial(&m, "Apply")?;
                ensure!(m.name_any() == changed, "applied {}", m.name_any());
                ensure!(
                    m.labels().get("seen").map(String::as_str) == Some("later"),
                    "labels {:?}",
                    m.labels()
                );
                initial.sort();
                return Ok(initial);
            }
            other => bail!("unexpected watcher event {other:?}"),
        }
    }
    bail!("no change seen after 100 watcher events")
}

#[tokio::test]
async fn kube_runtime_metadata_watchers_list_watch_and_stream() -> anyhow::Result<()> {
    let ns = "pomw";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in ["one", "two"] {
        cms.create(
            &PostParams::default(),
            &configmap(name, json!({"app": "w"}), json!({"k": name}))?,
        )
        .await?;
    }
    let config = || watcher::Config::default().labels("app=w");

    #[allow(deprecated)]
    let list_watch = kube::runtime::metadata_watcher(cms.clone(), config());
    let got = watch_until_change(list_watch, &cms, "one").await?;
    ensure!(got == ["one", "two"], "metadata_watcher initial {got:?}");

    // kube 5's replacement: watcher over Api<PartialObjectMeta<K>>, with a streaming list
    // (sendInitialEvents, ended by the initial-events-end bookmark).
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), ns);
    let streaming = watcher::watcher(metas, config().streaming_lists());
    let got = watch_until_change(streaming, &cms, "two").await?;
    ensure!(got == ["one", "two"], "streaming initial {got:?}");
    Ok(())
}

#[tokio::test]
async fn accept_fallbacks_and_mismatched_kinds_follow_kubernetes() -> anyhow::Result<()> {
    let ns = "pomraw";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in ["a", "b"] {
        cms.create(
            &PostParams::default(),
            &configmap(name, json!({}), json!({"secret-ish": "payload"}))?,
        )
        .await?;
    }
    let list = format!("/api/v1/namespaces/{ns}/configmaps");
    let one = format!("{list}/a");

    // client-go's metadata headers: the protobuf entry is skipped, the JSON one used.
    let (status, v) = raw_json(&client, &one, CLIENT_GO_GET).await?;
    ensure!(status == 200, "get: {status} {v}");
    ensure!(
        v["kind"] == "PartialObjectMetadata" && v["apiVersion"] == META_V1,
        "get with client-go's header: {v}"
    );
    ensure!(v.get("data").is_none(), "metadata only: {v}");
    ensure!(
        v["metadata"]["name"] == "a" && v["metadata"]["uid"].is_string(),
        "get metadata: {v}"
    );
    let (status, v) = raw_json(&client, &list, CLIENT_GO_LIST).await?;
    ensure!(status == 200, "list: {status} {v}");
    ensure!(
        v["kind"] == "PartialObjectMetadataList",
        "list with client-go's header: {v}"
    );
    let items = v["items"].as_array().context("items")?;
    ensure!(names(items) == ["a", "b"], "list items: {v}");
    for i in items {
        ensure!(
            i["kind"] == "PartialObjectMetadata"
                && i["apiVersion"] == META_V1
                && i.get("data").is_none(),
            "item {i}"
        );
    }
    ensure!(v["metadata"]["resourceVersion"].is_string(), "list rv: {v}");

    // An unsupported version is skipped for the next entry (v1beta1 here).
    let beta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1beta1,application/json";
    let (status, v) = raw_json(&client, &list, beta).await?;
    ensure!(status == 200, "beta list: {status} {v}");
    ensure!(
        v["apiVersion"] == "meta.k8s.io/v1beta1"
            && v["items"][0]["apiVersion"] == "meta.k8s.io/v1beta1",
        "v1beta1 fallback: {v}"
    );
    // The same list from etcd (an exact revision) is the same metadata.
    let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("");
    let (status, exact) = raw_json(
        &client,
        &format!("{list}?resourceVersion={rv}&resourceVersionMatch=Exact"),
        beta,
    )
    .await?;
    ensure!(
        status == 200 && exact["items"] == v["items"],
        "exact: {status} {exact}"
    );

    // The first acceptable entry wins: a Table before metadata, metadata before JSON.
    let table_first = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
    let (status, v) = raw_json(&client, &list, table_first).await?;
    ensure!(status == 200 && v["kind"] == "Table", "{status} {v}");
    // Only unsupported conversions: 406.
    let (status, v) = raw_json(
        &client,
        &list,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v3",
    )
    .await?;
    ensure!(
        status == 406 && v["reason"] == "NotAcceptable",
        "{status} {v}"
    );

    // The kind is negotiated before the verb is known: the wrong one is Kubernetes' 406.
    let (status, v) = raw_json(&client, &one, CLIENT_GO_LIST).await?;
    ensure!(
        status == 406
            && v["reason"] == "NotAcceptable"
            && v["message"]
                == "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)",
        "get as a list: {status} {v}"
    );
    let (status, v) = raw_json(&client, &list, CLIENT_GO_GET).await?;
    ensure!(
        status == 406
            && v["message"]
                == "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)",
        "list as an object: {status} {v}"
    );

    // YAML metadata.
    let (status, ct, body) = raw(
        &client,
        Method::GET,
        &one,
        "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    .await?;
    let text = String::from_utf8_lossy(&body);
    ensure!(
        status == 200
            && ct.starts_with("application/yaml")
            && text.contains("kind: PartialObjectMetadata")
            && !text.contains("payload"),
        "yaml: {status} {ct} {text}"
    );
    Ok(())
}

/// What the test controller saw: the names it reconciled, in order.
type Seen = tokio::sync::mpsc::UnboundedSender<String>;

async fn reconcile(obj: Arc<Secret>, seen: Arc<Seen>) -> Result<Action, kube::Error> {
    let _ = seen.send(obj.name_any());
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Secret>, _: &kube::Error, _: Arc<Seen>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Waits for a reconcile of `name`, or fails after [`WAIT`].
async fn reconciled(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    name: &str,
    why: &str,
) -> anyhow::Result<()> {
    bounded(why, async {
        while let Some(n) = rx.recv().await {
            if n == name {
                return Ok(());
            }
        }
        bail!("the controller stopped")
    })
    .await?
}

#[tokio::test]
async fn controller_owns_reconciles_the_parent_when_an_owned_configmap_changes()
-> anyhow::Result<()> {
    let ns = "pomctl";
    let (_cluster, client) = setup(ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let parent = secrets
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "parent"}}))?,
        )
        .await?;
    let uid = parent.uid().context("parent uid")?;
    cms.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "child", "ownerReferences": [{
            "apiVersion": "v1", "kind": "Secret", "name": "parent", "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]}, "data": {"k": "1"}}))?,
    )
    .await?;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let controller = Controller::new(secrets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(tx))
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    let result = async {
        reconciled(&mut rx, "parent", "first reconcile").await?;
        // Let the start-up triggers (the parent's and the child's initial lists) settle.
        let mut quiet = false;
        for _ in 0..20 {
            match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) => bail!("the controller stopped"),
                Err(_) => {
                    quiet = true;
                    break;
                }
            }
        }
        ensure!(quiet, "the controller keeps reconciling without changes");
        // Only the owned ConfigMap changes: the parent is reconciled through `owns`.
        cms.patch(
            "child",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "2"}})),
        )
        .await?;
        reconciled(&mut rx, "parent", "reconcile after the child changed").await?;
        cms.delete("child", &Default::default()).await?;
        reconciled(&mut rx, "parent", "reconcile after the child was deleted").await
    }
    .await;
    task.abort();
    result
}
