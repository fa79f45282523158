//! The kube-rs half of the compatibility matrix: the objects of `kubectl_matrix.rs` (the
//! `web` Deployment, Service and ConfigMap) driven through kube 5 — `Api` for every verb,
//! patch type and subresource, `watcher` and `reflector` from kube-runtime, `DynamicObject`
//! and discovery — against a real etcd + kadm-apiserver.
//!
//! No controller-manager runs here, so the delete cascades assert what the apiserver alone
//! does: the finalizers and deletionTimestamp the garbage collector acts on, and removal
//! once no finalizer is left.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kadm_e2e::{TestCluster, WAIT};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind, Status};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

/// Kubernetes' message for a write based on a stale resourceVersion.
const OPTIMISTIC_LOCK: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn from_json<K: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> anyhow::Result<K> {
    serde_json::from_value(v).context("build a typed object")
}

/// The `web` Deployment of the kubectl matrix.
fn web_deployment(image: &str, replicas: i32) -> anyhow::Result<Deployment> {
    from_json(json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": image, "ports": [{"containerPort": 80}],
                }]},
            },
        },
    }))
}

/// The `web` Service of the kubectl matrix.
fn web_service_json() -> Value {
    json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 80, "nodePort": 30180}],
        },
    })
}

fn configmap(name: &str, labels: Value, data: Value) -> anyhow::Result<ConfigMap> {
    from_json(json!({"metadata": {"name": name, "labels": labels}, "data": data}))
}

/// A Deployment like `web`, named `name`, for the delete cascades.
fn owner_deployment(name: &str) -> anyhow::Result<Deployment> {
    from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
            },
        },
    }))
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": name}}))?,
    )
    .await
    .with_context(|| format!("create namespace {name}"))?;
    Ok(())
}

/// A cluster, a kube client, and a fresh namespace.
async fn setup(ns: &str) -> anyhow::Result<(TestCluster, Client)> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    create_namespace(&client, ns).await?;
    Ok((cluster, client))
}

/// Runs `fut` for at most [`WAIT`].
async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(WAIT, fut)
        .await
        .with_context(|| format!("{what}: no answer within {}s", WAIT.as_secs()))
}

/// The Status of a request that must fail with `code`.
fn api_error<T: Debug>(result: kube::Result<T>, code: u16, what: &str) -> anyhow::Result<Status> {
    match result {
        Err(kube::Error::Api(s)) if s.code == code => Ok(*s),
        Err(e) => bail!("{what}: expected {code}, got {e:#}"),
        Ok(v) => bail!("{what}: expected {code}, but it succeeded: {v:?}"),
    }
}

fn rv<K: Resource>(o: &K) -> String {
    o.meta().resource_version.clone().unwrap_or_default()
}

fn names<K: Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

fn data_of(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The (manager, operation) pairs of an object's managedFields.
fn managers<K: Resource>(o: &K) -> Vec<(String, String)> {
    o.meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether `manager`'s entry owns the fieldsV1 path `path` (e.g. `["f:data", "f:x"]`).
fn owns<K: Resource>(o: &K, manager: &str, path: &[&str]) -> bool {
    o.meta().managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| path.iter().try_fold(&f.0, |v, key| v.get(*key)).is_some())
    })
}

#[tokio::test]
async fn create_get_list_with_selectors_pages_and_stale_replace() -> anyhow::Result<()> {
    let ns = "crud";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();

    // Create: the server fills in identity and Kubernetes' defaults.
    let deploy = deployments
        .create(&pp, &web_deployment("nginx:1.25", 2)?)
        .await?;
    ensure!(deploy.metadata.uid.is_some() && !rv(&deploy).is_empty());
    ensure!(deploy.metadata.creation_timestamp.is_some());
    ensure!(
        deploy.metadata.generation == Some(1),
        "{:?}",
        deploy.metadata
    );
    let spec = deploy.spec.clone().context("deployment spec")?;
    ensure!(spec.revision_history_limit == Some(10));
    ensure!(spec.progress_deadline_seconds == Some(600));
    ensure!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("RollingUpdate"),
        "{spec:?}"
    );
    let container = &spec.template.spec.as_ref().context("pod spec")?.containers[0];
    ensure!(container.image_pull_policy.as_deref() == Some("IfNotPresent"));
    ensure!(container.termination_message_path.as_deref() == Some("/dev/termination-log"));

    let svc = services
        .create(&pp, &from_json(web_service_json())?)
        .await?;
    let svc_spec = svc.spec.clone().context("service spec")?;
    ensure!(svc_spec.session_affinity.as_deref() == Some("None"));
    let port = &svc_spec.ports.as_ref().context("service ports")?[0];
    ensure!(port.protocol.as_deref() == Some("TCP") && port.node_port == Some(30180));

    let cm = cms
        .create(
            &pp,
            &configmap("web-config", json!({"app": "web"}), json!({"a": "1"}))?,
        )
        .await?;

    // Creating it again: 409 AlreadyExists, with Kubernetes' message and details.
    let s = api_error(
        cms.create(
            &pp,
            &configmap("web-config", json!({}), json!({"a": "other"}))?,
        )
        .await,
        409,
        "create an existing configmap",
    )?;
    ensure!(s.reason == "AlreadyExists", "{s:?}");
    ensure!(
        s.message == "configmaps \"web-config\" already exists",
        "{s:?}"
    );
    let details = s.details.context("AlreadyExists without details")?;
    ensure!(details.name == "web-config" && details.kind == "configmaps");

    // Get returns what create returned.
    ensure!(deployments.get("web").await? == deploy);
    ensure!(services.get("web").await? == svc);
    ensure!(cms.get("web-config").await? == cm);
    let s = api_error(
        deployments.get("nope").await,
        404,
        "get a missing deployment",
    )?;
    ensure!(s.reason == "NotFound", "{s:?}");
    ensure!(s.message == "deployments.apps \"nope\" not found", "{s:?}");
    ensure!(deployments.get_opt("nope").await?.is_none());

    // Lists with label and field selectors.
    for i in 0..7 {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        cms.create(
            &pp,
            &configmap(
                &format!("cm-{i}"),
                json!({"group": "paged", "parity": parity}),
                json!({"i": i.to_string()}),
            )?,
        )
        .await?;
    }
    let listed = |lp: ListParams| {
        let cms = cms.clone();
        async move { anyhow::Ok(names(&cms.list(&lp).await?.items)) }
    };
    let all_paged: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
    ensure!(listed(ListParams::default().labels("group=paged")).await? == all_paged);
    ensure!(
        listed(ListParams::default().labels("group=paged,parity=even")).await?
            == ["cm-0", "cm-2", "cm-4", "cm-6"]
    );
    ensure!(
        listed(ListParams::default().labels("parity in (odd),group")).await?
            == ["cm-1", "cm-3", "cm-5"]
    );
    ensure!(listed(ListParams::default().labels("!group")).await? == ["web-config"]);
    ensure!(listed(ListParams::default().fields("metadata.name=cm-3")).await? == ["cm-3"]);
    ensure!(
        listed(
            ListParams::default()
                .labels("parity=odd")
                .fields("metadata.name!=cm-3")
        )
        .await?
            == ["cm-1", "cm-5"]
    );
    let in_ns: Api<Deployment> = Api::all(client.clone());
    ensure!(
        names(
            &in_ns
                .list(&ListParams::default().fields(&format!("metadata.namespace={ns}")))
                .await?
                .items
        ) == ["web"]
    );
    ensure!(
        names(
            &in_ns
                .list(&ListParams::default().fields("metadata.namespace=default"))
                .await?
                .items
        )
        .is_empty()
    );
    let s = api_error(
        cms.list(&ListParams::default().fields("data.a=1")).await,
        400,
        "an unsupported field selector",
    )?;
    ensure!(s.reason == "BadRequest", "{s:?}");
    ensure!(s.message == "field label not supported: data.a", "{s:?}");

    // Pagination: pages of 3 over a snapshot; a create between pages is not seen.
    let mut seen = Vec::new();
    let mut continue_token: Option<String> = None;
    let mut snapshot_rv: Option<String> = None;
    let mut remaining = Vec::new();
    for page in 0.. {
        ensure!(page < 5, "more pages than 8 configmaps need: {seen:?}");
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &continue_token {
            lp = lp.continue_token(t);
        }
        let list = cms.list(&lp).await?;
        ensure!(list.items.len() <= 3, "page {page}: {}", list.items.len());
        seen.extend(names(&list.items));
        remaining.push(list.metadata.remaining_item_count);
        match &snapshot_rv {
            None => {
                snapshot_rv = list.metadata.resource_version.clone();
                cms.create(&pp, &configmap("cm-late", json!({}), json!({}))?)
                    .await?;
            }
            Some(first) => ensure!(
                list.metadata.resource_version.as_ref() == Some(first),
                "page {page} is not served at the first page's resourceVersion"
            ),
        }
        continue_token = list.metadata.continue_.filter(|c| !c.is_empty());
        if continue_token.is_none() {
            break;
        }
    }
    let mut expected: Vec<String> = all_paged.clone();
    expected.push("web-config".into());
    ensure!(seen == expected, "paginated list {seen:?}");
    ensure!(
        remaining == [Some(5), Some(2), None],
        "remainingItemCount {remaining:?}"
    );
    ensure!(
        listed(ListParams::default())
            .await?
            .contains(&"cm-late".to_string())
    );

    // Replace with a stale resourceVersion: 409 Conflict, nothing written.
    let mut fresh = cms.get("web-config").await?;
    let stale = fresh.clone();
    fresh.data = Some(map(&[("a", "2")]));
    let replaced = cms.replace("web-config", &pp, &fresh).await?;
    ensure!(rv(&replaced) != rv(&stale));
    let mut late = stale.clone();
    late.data = Some(map(&[("a", "stale")]));
    let s = api_error(
        cms.replace("web-config", &pp, &late).await,
        409,
        "replace a configmap with a stale resourceVersion",
    )?;
    ensure!(s.reason == "Conflict", "{s:?}");
    ensure!(
        s.message
            == format!(
                "Operation cannot be fulfilled on configmaps \"web-config\": {OPTIMISTIC_LOCK}"
            ),
        "{s:?}"
    );
    ensure!(data_of(&cms.get("web-config").await?) == map(&[("a", "2")]));

    let mut stale_deploy = deploy.clone();
    stale_deploy.spec.as_mut().context("spec")?.replicas = Some(4);
    let newer = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await?;
    let s = api_error(
        deployments.replace("web", &pp, &stale_deploy).await,
        409,
        "replace a deployment with a stale resourceVersion",
    )?;
    ensure!(
        s.message
            == format!(
                "Operation cannot be fulfilled on deployments.apps \"web\": {OPTIMISTIC_LOCK}"
            ),
        "{s:?}"
    );
    let details = s.details.context("Conflict without details")?;
    ensure!(details.group == "apps" && details.kind == "deployments" && details.name == "web");
    ensure!(deployments.get("web").await? == newer);

    // Replacing with the current resourceVersion goes through and bumps generation.
    let mut current = newer.clone();
    current.spec.as_mut().context("spec")?.replicas = Some(4);
    let replaced = deployments.replace("web", &pp, &current).await?;
    ensure!(replaced.metadata.generation == Some(2));
    ensure!(replaced.spec.and_then(|s| s.replicas) == Some(4));
    Ok(())
}

#[tokio::test]
async fn patch_of_each_type_and_server_side_apply_conflicts() -> anyhow::Result<()> {
    let ns = "patch";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams {
        field_manager: Some("creator".into()),
        ..PostParams::default()
    };
    deployments
        .create(&pp, &web_deployment("nginx:1.25", 2)?)
        .await?;
    services
        .create(&pp, &from_json(web_service_json())?)
        .await?;
    cms.create(
        &pp,
        &configmap("web-config", json!({"app": "web"}), json!({"a": "1"}))?,
    )
    .await?;
    let patch_params = PatchParams::default();

    // JSON merge patch: null deletes a key, maps merge.
    let cm = cms
        .patch(
            "web-config",
            &patch_params,
            &Patch::Merge(json!({"metadata": {"labels": {"patched": "merge"}}, "data": {"a": null, "b": "3"}})),
        )
        .await?;
    ensure!(data_of(&cm) == map(&[("b", "3")]), "{cm:?}");
    ensure!(cm.labels() == &map(&[("app", "web"), ("patched", "merge")]));

    // Strategic merge patch: containers merge by name (ports survive), new ones append,
    // `$patch: delete` removes one.
    let d = deployments
        .patch(
            "web",
            &patch_params,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.26"},
                {"name": "sidecar", "image": "busybox:1.36"},
            ]}}}})),
        )
        .await?;
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    ensure!(
        names_of_containers(&containers) == ["nginx", "sidecar"],
        "{containers:?}"
    );
    ensure!(containers[0].image.as_deref() == Some("nginx:1.26"));
    ensure!(
        containers[0]
            .ports
            .as_ref()
            .is_some_and(|p| p.len() == 1 && p[0].container_port == 80),
        "the strategic patch replaced the container instead of merging it: {:?}",
        containers[0]
    );
    ensure!(d.metadata.generation == Some(2));
    let d = deployments
        .patch(
            "web",
            &patch_params,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"},
            ]}}}})),
        )
        .await?;
    let containers = d
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    ensure!(
        names_of_containers(&containers) == ["nginx"],
        "{containers:?}"
    );

    // JSON patch: test, add, replace in one atomic document; a failed test changes nothing.
    let svc = services
        .patch(
            "web",
            &patch_params,
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "test", "path": "/spec/ports/0/port", "value": 80},
                {"op": "add", "path": "/metadata/labels/tier", "value": "fe"},
                {"op": "replace", "path": "/spec/ports/0/targetPort", "value": 8080},
            ]))?),
        )
        .await?;
    ensure!(svc.labels().get("tier").map(String::as_str) == Some("fe"));
    let target = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p[0].target_port.clone());
    ensure!(
        target == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080)),
        "{target:?}"
    );
    let s = api_error(
        services
            .patch(
                "web",
                &patch_params,
                &Patch::Json::<()>(serde_json::from_value(json!([
                    {"op": "test", "path": "/spec/ports/0/port", "value": 81},
                    {"op": "add", "path": "/metadata/labels/failed", "value": "x"},
                ]))?),
            )
            .await,
        422,
        "a JSON patch whose test fails",
    )?;
    ensure!(s.reason == "Invalid" || s.reason.is_empty(), "{s:?}");
    ensure!(services.get("web").await?.labels().get("failed").is_none());

    // Server-side apply: creates, records the manager, conflicts name field and manager.
    let alpha = PatchParams::apply("alpha");
    let applied = cms
        .patch(
            "ssa",
            &alpha,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ssa"}, "data": {"x": "1", "y": "1"},
            })),
        )
        .await?;
    ensure!(data_of(&applied) == map(&[("x", "1"), ("y", "1")]));
    ensure!(
        managers(&applied) == [("alpha".to_string(), "Apply".to_string())],
        "{:?}",
        managers(&applied)
    );
    ensure!(owns(&applied, "alpha", &["f:data", "f:x"]));

    let beta = PatchParams::apply("beta");
    let beta_x = Patch::Apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "2"},
    }));
    let s = api_error(
        cms.patch("ssa", &beta, &beta_x).await,
        409,
        "a second manager applying a field the first owns",
    )?;
    ensure!(s.reason == "Conflict", "{s:?}");
    ensure!(
        s.message == "Apply failed with 1 conflict: conflict with \"alpha\": .data.x",
        "{s:?}"
    );
    let causes = s.details.map(|d| d.causes).unwrap_or_default();
    ensure!(
        causes.len() == 1
            && causes[0].reason == "FieldManagerConflict"
            && causes[0].field == ".data.x"
            && causes[0].message == "conflict with \"alpha\"",
        "{causes:?}"
    );
    ensure!(data_of(&cms.get("ssa").await?)["x"] == "1");

    let forced = cms.patch("ssa", &beta.clone().force(), &beta_x).await?;
    ensure!(data_of(&forced) == map(&[("x", "2"), ("y", "1")]));
    ensure!(owns(&forced, "beta", &["f:data", "f:x"]));
    ensure!(!owns(&forced, "alpha", &["f:data", "f:x"]));
    ensure!(owns(&forced, "alpha", &["f:data", "f:y"]));

    // beta stops applying x: as its only owner, beta's apply removes it.
    let pruned = cms
        .patch(
            "ssa",
            &beta,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}}),
            ),
        )
        .await?;
    ensure!(data_of(&pruned) == map(&[("y", "1")]), "{pruned:?}");

    // A conflict with an Update manager names its API version.
    let s = api_error(
        deployments
            .patch(
                "web",
                &alpha,
                &Patch::Apply(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web"}, "spec": {"replicas": 3},
                })),
            )
            .await,
        409,
        "apply of replicas owned by the creator",
    )?;
    ensure!(
        s.message
            == "Apply failed with 1 conflict: conflict with \"creator\" using apps/v1: .spec.replicas",
        "{s:?}"
    );
    let d = deployments
        .patch(
            "web",
            &alpha.clone().force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"}, "spec": {"replicas": 3},
            })),
        )
        .await?;
    ensure!(d.spec.as_ref().and_then(|s| s.replicas) == Some(3));
    ensure!(owns(&d, "alpha", &["f:spec", "f:replicas"]));
    ensure!(!owns(&d, "creator", &["f:spec", "f:replicas"]));
    ensure!(owns(&d, "creator", &["f:spec", "f:selector"]));
    Ok(())
}

fn names_of_containers(cs: &[k8s_openapi::api::core::v1::Container]) -> Vec<&str> {
    cs.iter().map(|c| c.name.as_str()).collect()
}

#[tokio::test]
async fn scale_and_status_subresources() -> anyhow::Result<()> {
    let ns = "sub";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let created = deployments
        .create(&pp, &web_deployment("nginx:1.25", 2)?)
        .await?;

    // /scale reads the deployment's replicas and selector.
    let scale = deployments.get_scale("web").await?;
    ensure!(scale.metadata.name.as_deref() == Some("web"));
    ensure!(scale.metadata.namespace.as_deref() == Some(ns));
    ensure!(scale.metadata.uid == created.metadata.uid);
    ensure!(scale.metadata.resource_version == created.metadata.resource_version);
    ensure!(scale.spec.as_ref().and_then(|s| s.replicas) == Some(2));
    let status = scale.status.clone().context("scale status")?;
    ensure!(status.replicas == 0 && status.selector.as_deref() == Some("app=web"));

    let patched = deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    ensure!(patched.spec.as_ref().and_then(|s| s.replicas) == Some(5));
    let d = deployments.get("web").await?;
    ensure!(d.spec.as_ref().and_then(|s| s.replicas) == Some(5));
    ensure!(d.metadata.generation == Some(2), "{:?}", d.metadata);
    ensure!(
        rv(&d)
            == patched
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default()
    );

    // A replace of the scale read before the patch is stale.
    let mut stale = scale.clone();
    stale.spec.as_mut().context("scale spec")?.replicas = Some(7);
    let s = api_error(
        deployments.replace_scale("web", &pp, &stale).await,
        409,
        "replace a stale scale",
    )?;
    ensure!(s.reason == "Conflict", "{s:?}");
    ensure!(
        deployments
            .get_scale("web")
            .await?
            .spec
            .and_then(|s| s.replicas)
            == Some(5)
    );

    // /status writes status only: spec changes in the same body are dropped.
    let mut next = d.clone();
    next.spec.as_mut().context("spec")?.replicas = Some(9);
    next.status = Some(from_json(json!({
        "observedGeneration": 2, "replicas": 5, "updatedReplicas": 5,
        "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 2,
    }))?);
    let written = deployments.replace_status("web", &pp, &next).await?;
    let st = written
        .status
        .clone()
        .context("status after replace_status")?;
    ensure!(st.ready_replicas == Some(3) && st.observed_generation == Some(2));
    ensure!(written.spec.as_ref().and_then(|s| s.replicas) == Some(5));
    ensure!(written.metadata.generation == Some(2));
    ensure!(deployments.get_status("web").await? == written);
    ensure!(
        deployments
            .get_scale("web")
            .await?
            .status
            .map(|s| s.replicas)
            == Some(5)
    );

    // A replace of the main resource ignores status.
    let mut main = written.clone();
    main.status.as_mut().context("status")?.ready_replicas = Some(0);
    main.metadata.labels = Some(map(&[("app", "web"), ("replaced", "yes")]));
    let replaced = deployments.replace("web", &pp, &main).await?;
    ensure!(replaced.status.and_then(|s| s.ready_replicas) == Some(3));
    ensure!(replaced.metadata.labels == main.metadata.labels);

    // A stale /status write conflicts like any other.
    let s = api_error(
        deployments.replace_status("web", &pp, &next).await,
        409,
        "replace status with a stale resourceVersion",
    )?;
    ensure!(s.reason == "Conflict", "{s:?}");

    let patched = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 5, "availableReplicas": 5}})),
        )
        .await?;
    let st = patched.status.context("status after patch_status")?;
    ensure!(st.ready_replicas == Some(5) && st.updated_replicas == Some(5));
    Ok(())
}

/// The finalizers of a deployment.
fn finalizers(d: &Deployment) -> Vec<String> {
    d.metadata.finalizers.clone().unwrap_or_default()
}

/// Deletes `name` and insists the answer is the object, still there, marked for deletion.
async fn delete_marks(
    api: &Api<Deployment>,
    name: &str,
    dp: &DeleteParams,
) -> anyhow::Result<Deployment> {
    let marked =
        api.delete(name, dp).await?.left().with_context(|| {
            format!("{name}: the delete answered with a Status, not the object")
        })?;
    ensure!(
        marked.metadata.deletion_timestamp.is_some(),
        "{name}: {:?}",
        marked.metadata
    );
    ensure!(
        api.get(name).await? == marked,
        "{name}: the returned object is not what is stored"
    );
    Ok(marked)
}

/// Removes every finalizer, as the garbage collector does when it is done.
async fn remove_finalizers(api: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn delete_propagation_sets_the_garbage_collector_finalizers() -> anyhow::Result<()> {
    let ns = "del";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    for name in ["d-bg", "d-fg", "d-or", "d-custom"] {
        deployments.create(&pp, &owner_deployment(name)?).await?;
    }

    // Background: nothing to wait for, gone at once; deployments answer with a Status.
    let uid = deployments.get("d-bg").await?.metadata.uid;
    let s = deployments
        .delete("d-bg", &DeleteParams::background())
        .await?
        .right()
        .context("a background delete of a deployment returned the object, not a Status")?;
    ensure!(s.is_success(), "{s:?}");
    let details = s.details.context("delete status without details")?;
    ensure!(
        details.name == "d-bg"
            && details.group == "apps"
            && details.kind == "deployments"
            && Some(details.uid.clone()) == uid,
        "{details:?}"
    );
    ensure!(deployments.get_opt("d-bg").await?.is_none());

    // Foreground and orphan: marked for deletion, held by the GC's finalizer until the
    // GC (here: the test) removes it.
    for (name, dp, finalizer) in [
        ("d-fg", DeleteParams::foreground(), "foregroundDeletion"),
        ("d-or", DeleteParams::orphan(), "orphan"),
    ] {
        let marked = delete_marks(&deployments, name, &dp).await?;
        ensure!(
            finalizers(&marked) == [finalizer],
            "{name}: {:?}",
            finalizers(&marked)
        );
        ensure!(
            marked.metadata.deletion_grace_period_seconds == Some(0),
            "{name}: {:?}",
            marked.metadata
        );
        // Deleting again the same way writes nothing.
        let again = delete_marks(&deployments, name, &dp).await?;
        ensure!(rv(&again) == rv(&marked), "{name}: a repeated delete wrote");
        remove_finalizers(&deployments, name).await?;
        ensure!(
            deployments.get_opt(name).await?.is_none(),
            "{name} outlived its finalizer"
        );
    }

    // Other finalizers are kept and hold the object after the GC's is gone.
    deployments
        .patch(
            "d-custom",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await?;
    let held = delete_marks(&deployments, "d-custom", &DeleteParams::foreground()).await?;
    ensure!(
        finalizers(&held) == ["example.com/hold", "foregroundDeletion"],
        "{:?}",
        finalizers(&held)
    );
    deployments
        .patch(
            "d-custom",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": "foregroundDeletion"},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ]))?),
        )
        .await?;
    let still = deployments.get("d-custom").await?;
    ensure!(still.metadata.deletion_timestamp == held.metadata.deletion_timestamp);
    ensure!(finalizers(&still) == ["example.com/hold"]);
    remove_finalizers(&deployments, "d-custom").await?;
    ensure!(deployments.get_opt("d-custom").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn marking_an_object_for_deletion_bumps_its_generation() -> anyhow::Result<()> {
    // Kubernetes' markAsDeleting: controllers see the deletion as a new generation.
    let ns = "del-gen";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &owner_deployment("d")?)
        .await?;
    let marked = delete_marks(&deployments, "d", &DeleteParams::foreground()).await?;
    ensure!(
        marked.metadata.generation == Some(2),
        "generation after the first delete: {:?}",
        marked.metadata.generation
    );
    let again = delete_marks(&deployments, "d", &DeleteParams::foreground()).await?;
    ensure!(
        again.metadata.generation == Some(2),
        "generation after a repeated delete: {:?}",
        again.metadata.generation
    );
    Ok(())
}

#[tokio::test]
async fn a_second_delete_with_another_policy_swaps_the_gc_finalizer() -> anyhow::Result<()> {
    // Kubernetes recomputes the GC finalizers on every delete of an object that
    // finalizers hold (deletionFinalizersForGarbageCollection): `kubectl delete
    // --cascade=orphan` rescues the dependents of a stuck foreground deletion.
    let ns = "del-swap";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    for name in ["d-swap", "d-own"] {
        deployments
            .create(&PostParams::default(), &owner_deployment(name)?)
            .await?;
    }
    let first = delete_marks(&deployments, "d-swap", &DeleteParams::foreground()).await?;
    let swapped = delete_marks(&deployments, "d-swap", &DeleteParams::orphan()).await?;
    ensure!(
        finalizers(&swapped) == ["orphan"],
        "foreground, then orphan: {:?}",
        finalizers(&swapped)
    );
    ensure!(
        swapped.metadata.deletion_timestamp == first.metadata.deletion_timestamp,
        "a repeated delete moved deletionTimestamp"
    );
    let back = delete_marks(&deployments, "d-swap", &DeleteParams::foreground()).await?;
    ensure!(
        finalizers(&back) == ["foregroundDeletion"],
        "orphan, then foreground: {:?}",
        finalizers(&back)
    );
    // An explicit background delete drops the GC finalizer; nothing else holds it.
    deployments
        .delete("d-swap", &DeleteParams::background())
        .await?;
    ensure!(
        deployments.get_opt("d-swap").await?.is_none(),
        "a background delete left the object that only the GC's finalizer held"
    );

    // An orphan finalizer set by the owner itself, then an explicit background delete.
    deployments
        .patch(
            "d-own",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["orphan"]}})),
        )
        .await?;
    deployments
        .delete("d-own", &DeleteParams::background())
        .await?;
    ensure!(
        deployments.get_opt("d-own").await?.is_none(),
        "a background delete kept the orphan finalizer"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_batch_v1_job_without_a_policy_orphans_its_pods() -> anyhow::Result<()> {
    // batch/v1 keeps OrphanDependents as its default policy for backward compatibility
    // (kubectl always sends one; API clients that send none get the orphan finalizer).
    let ns = "del-job";
    let (_cluster, client) = setup(ns).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = |name: &str| -> anyhow::Result<Job> {
        from_json(json!({
            "metadata": {"name": name},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox:1.36"}],
            }}},
        }))
    };
    let pp = PostParams::default();
    jobs.create(&pp, &job("default")?).await?;
    jobs.create(&pp, &job("background")?).await?;
    let marked = jobs
        .delete("default", &DeleteParams::default())
        .await?
        .left()
        .context("a job deleted without a policy is held by the orphan finalizer")?;
    ensure!(
        marked.metadata.finalizers.as_deref() == Some(&["orphan".to_string()][..]),
        "{:?}",
        marked.metadata
    );
    jobs.delete("background", &DeleteParams::background())
        .await?;
    ensure!(jobs.get_opt("background").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn delete_precondition_conflicts_name_the_kind_as_kubernetes_does() -> anyhow::Result<()> {
    // Kubernetes checks DeleteOptions.preconditions in BeforeDelete, whose Conflict names
    // the Kind (`ConfigMap`, `Deployment.apps`), not the resource.
    let ns = "del-pre";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let cm = cms
        .create(
            &pp,
            &configmap("web-config", json!({"app": "web"}), json!({"a": "1"}))?,
        )
        .await?;
    let uid = cm.metadata.uid.clone().unwrap_or_default();
    let rv_now = rv(&cm);
    let other_uid = "00000000-0000-0000-0000-000000000000";
    let with = |uid: Option<&str>, rv: Option<&str>| DeleteParams {
        preconditions: Some(Preconditions {
            uid: uid.map(str::to_string),
            resource_version: rv.map(str::to_string),
        }),
        ..DeleteParams::default()
    };
    let s = api_error(
        cms.delete("web-config", &with(Some(other_uid), None)).await,
        409,
        "delete with a wrong uid precondition",
    )?;
    ensure!(s.reason == "Conflict", "{s:?}");
    ensure!(
        s.message
            == format!(
                "Operation cannot be fulfilled on ConfigMap \"web-config\": the UID in the precondition ({other_uid}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
        "{s:?}"
    );
    let details = s.details.context("Conflict without details")?;
    ensure!(
        details.kind == "ConfigMap" && details.name == "web-config",
        "{details:?}"
    );
    let s = api_error(
        cms.delete("web-config", &with(None, Some("1"))).await,
        409,
        "delete with a stale resourceVersion precondition",
    )?;
    ensure!(
        s.message
            == format!(
                "Operation cannot be fulfilled on ConfigMap \"web-config\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({rv_now}). The object might have been modified"
            ),
        "{s:?}"
    );
    ensure!(cms.get_opt("web-config").await?.is_some());
    cms.delete("web-config", &with(Some(&uid), Some(&rv_now)))
        .await?;
    ensure!(cms.get_opt("web-config").await?.is_none());

    let d = deployments.create(&pp, &owner_deployment("d")?).await?;
    let s = api_error(
        deployments.delete("d", &with(Some(other_uid), None)).await,
        409,
        "delete a deployment with a wrong uid precondition",
    )?;
    ensure!(
        s.message.starts_with(&format!(
            "Operation cannot be fulfilled on Deployment.apps \"d\": the UID in the precondition ({other_uid}) does not match the UID in record ({})",
            d.metadata.uid.clone().unwrap_or_default()
        )),
        "{s:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_finalizer_added_while_deleting_is_named_as_kubernetes_names_it() -> anyhow::Result<()> {
    // ValidateNoNewFinalizers prints the new finalizers with Go's %#v of a []string.
    let ns = "del-fin";
    let (_cluster, client) = setup(ns).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &owner_deployment("d")?)
        .await?;
    delete_marks(&deployments, "d", &DeleteParams::orphan()).await?;
    let s = api_error(
        deployments
            .patch(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": [
                    "orphan", "example.com/b", "example.com/a",
                ]}})),
            )
            .await,
        422,
        "add finalizers to an object being deleted",
    )?;
    ensure!(s.reason == "Invalid", "{s:?}");
    ensure!(
        s.message.contains(
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/a\", \"example.com/b\"}"
        ),
        "{s:?}"
    );
    Ok(())
}

/// What a watcher reported, reduced to comparable facts.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Init,
    InitApply(String),
    InitDone,
    Apply(String, String),
    Delete(String),
}

fn seen(ev: watcher::Event<ConfigMap>) -> Seen {
    let value = |cm: &ConfigMap| data_of(cm).get("v").cloned().unwrap_or_default();
    match ev {
        watcher::Event::Init => Seen::Init,
        watcher::Event::InitApply(cm) => Seen::InitApply(cm.name_any()),
        watcher::Event::InitDone => Seen::InitDone,
        watcher::Event::Apply(cm) => Seen::Apply(cm.name_any(), value(&cm)),
        watcher::Event::Delete(cm) => Seen::Delete(cm.name_any()),
    }
}

#[tokio::test]
async fn watcher_sees_the_initial_list_then_changes_in_order() -> anyhow::Result<()> {
    let ns = "watch";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();

    // Streaming lists need sendInitialEvents: the initial state, then the
    // `k8s.io/initial-events-end` bookmark.
    cms.create(&pp, &configmap("probe", json!({}), json!({}))?)
        .await?;
    let mut raw = cms
        .watch(&WatchParams::streaming_lists(), "")
        .await?
        .boxed();
    let mut initial = Vec::new();
    loop {
        match bounded("a streaming-list watch", raw.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => initial.push(cm.name_any()),
            Some(WatchEvent::Bookmark(b)) => {
                ensure!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str)
                        == Some("true"),
                    "a bookmark before the initial events ended: {:?}",
                    b.metadata.annotations
                );
                break;
            }
            other => bail!("unexpected event in the initial events: {other:?}"),
        }
    }
    ensure!(initial == ["probe"], "{initial:?}");
    drop(raw);
    cms.delete("probe", &DeleteParams::default()).await?;

    for (strategy, config) in [
        ("list-watch", watcher::Config::default()),
        (
            "streaming-list",
            watcher::Config::default().streaming_lists(),
        ),
    ] {
        let p = |n: &str| format!("{strategy}-{n}");
        cms.create(
            &pp,
            &configmap(&p("a"), json!({"app": "web"}), json!({"v": "0"}))?,
        )
        .await?;
        cms.create(
            &pp,
            &configmap(&p("b"), json!({"app": "web"}), json!({"v": "0"}))?,
        )
        .await?;
        cms.create(
            &pp,
            &configmap(&p("other"), json!({"app": "db"}), json!({"v": "0"}))?,
        )
        .await?;
        let selector = format!("app=web,strategy={strategy}");
        for n in ["a", "b", "other"] {
            cms.patch(
                &p(n),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"strategy": strategy}}})),
            )
            .await?;
        }
        let mut stream = watcher(cms.clone(), config.labels(&selector)).boxed();
        let mut next = async || -> anyhow::Result<Seen> {
            let ev = bounded(strategy, stream.try_next())
                .await?
                .with_context(|| format!("{strategy}: watcher error"))?
                .with_context(|| format!("{strategy}: the watcher ended"))?;
            Ok(seen(ev))
        };
        let mut got = vec![next().await?];
        while got.last() != Some(&Seen::InitDone) {
            ensure!(got.len() < 10, "{strategy}: no InitDone: {got:?}");
            got.push(next().await?);
        }
        ensure!(
            got == [
                Seen::Init,
                Seen::InitApply(p("a")),
                Seen::InitApply(p("b")),
                Seen::InitDone
            ],
            "{strategy}: initial events {got:?}"
        );

        // Create, update, enter the selector, leave it, delete: in that order.
        cms.create(
            &pp,
            &configmap(
                &p("new"),
                json!({"app": "web", "strategy": strategy}),
                json!({"v": "1"}),
            )?,
        )
        .await?;
        cms.patch(
            &p("new"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await?;
        cms.patch(
            &p("other"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
        )
        .await?;
        cms.patch(
            &p("a"),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": null}}})),
        )
        .await?;
        cms.delete(&p("new"), &DeleteParams::default()).await?;
        let mut changes = Vec::new();
        for _ in 0..5 {
            changes.push(next().await?);
        }
        ensure!(
            changes
                == [
                    Seen::Apply(p("new"), "1".into()),
                    Seen::Apply(p("new"), "2".into()),
                    Seen::Apply(p("other"), "0".into()),
                    Seen::Delete(p("a")),
                    Seen::Delete(p("new")),
                ],
            "{strategy}: changes {changes:?}"
        );
    }
    Ok(())
}

/// name → resourceVersion of a store's objects.
fn store_state(store: &Store<ConfigMap>) -> BTreeMap<String, String> {
    store
        .state()
        .iter()
        .map(|cm| (cm.name_any(), rv(cm.as_ref())))
        .collect()
}

/// Waits (bounded) until `store` holds exactly `want`.
async fn converge(
    what: &str,
    store: &Store<ConfigMap>,
    want: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let have = store_state(store);
        if &have == want {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: the store did not converge within {}s:\nhave {have:?}\nwant {want:?}",
            WAIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reflector_store_converges_to_the_exact_set_of_objects() -> anyhow::Result<()> {
    let ns = "reflect";
    let (_cluster, client) = setup(ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    for i in 0..3 {
        cms.create(
            &pp,
            &configmap(&format!("r-{i}"), json!({}), json!({"v": "0"}))?,
        )
        .await?;
    }

    let mut stores = Vec::new();
    let mut tasks = Vec::new();
    for (strategy, config) in [
        ("list-watch", watcher::Config::default().page_size(2)),
        (
            "streaming-list",
            watcher::Config::default().streaming_lists(),
        ),
    ] {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector::reflector(writer, watcher(cms.clone(), config));
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item
                    && let Ok(mut errs) = sink.lock()
                {
                    errs.push(format!("{e:#}"));
                }
            }
        }));
        bounded(strategy, reader.wait_until_ready())
            .await?
            .with_context(|| format!("{strategy}: the reflector's writer was dropped"))?;
        stores.push((strategy, reader, errors));
    }

    let expected = || {
        let cms = cms.clone();
        async move {
            let list = cms.list(&ListParams::default()).await?;
            anyhow::Ok(
                list.items
                    .iter()
                    .map(|cm| (cm.name_any(), rv(cm)))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
    };
    let want = expected().await?;
    ensure!(want.keys().cloned().collect::<Vec<_>>() == ["r-0", "r-1", "r-2"]);
    for (strategy, store, _) in &stores {
        converge(&format!("{strategy}: initial list"), store, &want).await?;
    }

    // Creates, updates and deletes, including an object that comes and goes.
    for i in 3..5 {
        cms.create(
            &pp,
            &configmap(&format!("r-{i}"), json!({}), json!({"v": "0"}))?,
        )
        .await?;
    }
    cms.patch(
        "r-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await?;
    cms.patch(
        "r-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await?;
    cms.delete("r-2", &DeleteParams::default()).await?;
    cms.delete("r-4", &DeleteParams::default()).await?;
    cms.patch(
        "r-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await?;
    let want = expected().await?;
    ensure!(want.keys().cloned().collect::<Vec<_>>() == ["r-0", "r-1", "r-3"]);
    for (strategy, store, errors) in &stores {
        converge(&format!("{strategy}: after changes"), store, &want).await?;
        let r0 = store
            .get(&ObjectRef::new("r-0").within(ns))
            .with_context(|| format!("{strategy}: r-0 not in the store"))?;
        ensure!(data_of(&r0) == map(&[("v", "2")]), "{strategy}: {r0:?}");
        let r1 = store
            .get(&ObjectRef::new("r-1").within(ns))
            .with_context(|| format!("{strategy}: r-1 not in the store"))?;
        ensure!(r1.labels().get("touched").map(String::as_str) == Some("yes"));
        let errs = errors.lock().map(|e| e.clone()).unwrap_or_default();
        ensure!(errs.is_empty(), "{strategy}: watcher errors {errs:?}");
    }
    for t in &tasks {
        t.abort();
    }
    Ok(())
}

#[tokio::test]
async fn discovery_and_dynamic_objects() -> anyhow::Result<()> {
    let ns = "dyn";
    let (_cluster, client) = setup(ns).await?;

    let discovery = bounded("discovery", Discovery::new(client.clone()).run())
        .await?
        .context("run discovery")?;
    let groups: BTreeSet<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "scheduling.k8s.io",
    ] {
        ensure!(groups.contains(g), "group {g:?} not discovered: {groups:?}");
    }
    let apps = discovery.get("apps").context("apps")?;
    ensure!(apps.preferred_version() == Some("v1"));
    let (deploy_ar, deploy_caps) = apps.recommended_kind("Deployment").context("Deployment")?;
    ensure!(
        deploy_ar == ApiResource::erase::<Deployment>(&()),
        "{deploy_ar:?}"
    );
    ensure!(deploy_caps.scope == Scope::Namespaced);
    for verb in [
        verbs::CREATE,
        verbs::GET,
        verbs::LIST,
        verbs::WATCH,
        verbs::UPDATE,
        verbs::PATCH,
        verbs::DELETE,
        verbs::DELETE_COLLECTION,
    ] {
        ensure!(deploy_caps.supports_operation(verb), "deployments: {verb}");
    }
    let subresources: BTreeSet<String> = deploy_caps
        .subresources
        .iter()
        .map(|(ar, _)| ar.plural.clone())
        .collect();
    ensure!(
        subresources.contains("scale") && subresources.contains("status"),
        "{subresources:?}"
    );
    let (ns_ar, ns_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .context("Namespace")?;
    ensure!(ns_ar.plural == "namespaces" && ns_caps.scope == Scope::Cluster);

    // Every discovered resource that lists can be listed.
    let mut listed = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            api.list(&ListParams::default().limit(1))
                .await
                .with_context(|| format!("list {} {}", ar.api_version, ar.plural))?;
            listed += 1;
        }
    }
    ensure!(listed >= 20, "only {listed} listable resources discovered");

    // The Service of the kubectl matrix, as a DynamicObject through the discovered resource.
    let (svc_ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Service"))
        .context("Service")?;
    ensure!(svc_ar == ApiResource::erase::<Service>(&()), "{svc_ar:?}");
    let services: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &svc_ar);
    let mut obj = DynamicObject::new("web", &svc_ar).within(ns);
    obj.metadata.labels = Some(map(&[("app", "web")]));
    obj.data = json!({"spec": web_service_json()["spec"].clone()});
    let created = services.create(&PostParams::default(), &obj).await?;
    ensure!(created.types.as_ref().map(|t| t.kind.as_str()) == Some("Service"));
    ensure!(
        created.data["spec"]["sessionAffinity"] == "None",
        "{:?}",
        created.data
    );
    ensure!(created.data["spec"]["ports"][0]["protocol"] == "TCP");

    let got = services.get("web").await?;
    ensure!(got.metadata.uid == created.metadata.uid);
    let typed: Service = got.clone().try_parse()?;
    ensure!(typed.spec.and_then(|s| s.type_).as_deref() == Some("NodePort"));

    let list = services
        .list(&ListParams::default().labels("app=web"))
        .await?;
    ensure!(names(&list.items) == ["web"]);
    ensure!(
        services
            .list(&ListParams::default().labels("app=db"))
            .await?
            .items
            .is_empty()
    );

    let patched = services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "fe"}}})),
        )
        .await?;
    ensure!(patched.labels().get("tier").map(String::as_str) == Some("fe"));
    // targetPort belongs to the creator: a conflict on the list-map path, then force.
    let apply = Patch::Apply(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }));
    let s = api_error(
        services
            .patch("web", &PatchParams::apply("dynamic"), &apply)
            .await,
        409,
        "apply of a targetPort the creator owns",
    )?;
    let causes = s.details.map(|d| d.causes).unwrap_or_default();
    ensure!(
        causes.len() == 1 && causes[0].field == ".spec.ports[port=80,protocol=\"TCP\"].targetPort",
        "{causes:?}"
    );
    let applied = services
        .patch("web", &PatchParams::apply("dynamic").force(), &apply)
        .await?;
    ensure!(
        applied.data["spec"]["ports"][0]["targetPort"] == 8080,
        "{:?}",
        applied.data
    );
    ensure!(managers(&applied).contains(&("dynamic".to_string(), "Apply".to_string())));

    services.delete("web", &DeleteParams::default()).await?;
    ensure!(services.get_opt("web").await?.is_none());
    Ok(())
}
