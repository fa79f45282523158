//! The Node authorizer's graph: which objects each node may read because a pod bound to it
//! (or a persistent volume claimed by such a pod) references them.
//!
//! Kubernetes keeps a general directed graph (`node ← pod ← secret`, `pod ← pvc ← pv ←
//! secret`, …) and walks it per request. The paths are short and of fixed shape, so kadm
//! keeps them as indexes instead: every bound pod's references, counted per node, plus the
//! persistent volumes' claims and secrets and the node of each volume attachment and
//! resource slice. A question is then a few hash lookups.
//!
//! [`NodeGraph`] keeps the indexes current from the watch cache: one task per fed resource
//! loads the cached objects, then applies each watch event (a pod bound, rebound, deleted),
//! never scanning per request. Decisions that would deny first wait (briefly) until the
//! graph has applied every change the cache holds, so a pod the client just saw created is
//! known to the graph.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kadm_apimachinery::{ResourceInfo, registry};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::cache::{Entry, EventType, WatchCache, WatchFrom};

/// Kubernetes' `kubernetes.io/config.mirror`: pods a kubelet mirrors from static manifests.
/// They grant nothing beyond the pod itself (NodeRestriction forbids their references too).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Objects a pod references, in the pod's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vertex {
    Secret,
    ConfigMap,
    Pvc,
    ServiceAccount,
    ResourceClaim,
}

/// The types a node may ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Pod,
    Ref(Vertex),
    Pv,
    VolumeAttachment,
    ResourceSlice,
}

/// What one pod bound to a node references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRefs {
    pub node: String,
    pub refs: Vec<(Vertex, String)>,
}

/// A persistent volume's claim and the secrets the kubelet reads for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PvRefs {
    pub claim: (String, String),
    pub secrets: Vec<(String, String)>,
}

type Key = (String, String);

/// The indexes, as of some state of the watch cache.
#[derive(Debug, Default)]
pub struct Graph {
    pods: HashMap<Key, PodRefs>,
    /// (type, namespace, name) → the nodes whose pods reference it, with how many pods do.
    referenced: HashMap<(Vertex, String, String), HashMap<String, u32>>,
    pvs: HashMap<String, PvRefs>,
    /// secret (namespace, name) → the persistent volumes that name it.
    pv_secrets: HashMap<Key, HashSet<String>>,
    attachments: HashMap<String, String>,
    slices: HashMap<String, String>,
}

impl Graph {
    /// Records `pod` as bound with `refs` (replacing what it had); an unbound pod is removed.
    pub fn set_pod(&mut self, key: Key, refs: Option<PodRefs>) {
        let refs = refs.filter(|r| !r.node.is_empty());
        if self.pods.get(&key) == refs.as_ref() {
            return;
        }
        self.remove_pod(&key);
        let Some(refs) = refs else { return };
        for (vertex, name) in &refs.refs {
            *self
                .referenced
                .entry((*vertex, key.0.clone(), name.clone()))
                .or_default()
                .entry(refs.node.clone())
                .or_default() += 1;
        }
        self.pods.insert(key, refs);
    }

    pub fn remove_pod(&mut self, key: &Key) {
        let Some(old) = self.pods.remove(key) else {
            return;
        };
        for (vertex, name) in old.refs {
            let k = (vertex, key.0.clone(), name);
            if let Some(nodes) = self.referenced.get_mut(&k) {
                if let Some(n) = nodes.get_mut(&old.node) {
                    *n -= 1;
                    if *n == 0 {
                        nodes.remove(&old.node);
                    }
                }
                if nodes.is_empty() {
                    self.referenced.remove(&k);
                }
            }
        }
    }

    /// Records a persistent volume; one without a claim grants nothing and is removed.
    pub fn set_pv(&mut self, name: &str, refs: Option<PvRefs>) {
        if let Some(old) = self.pvs.remove(name) {
            for s in old.secrets {
                if let Some(set) = self.pv_secrets.get_mut(&s) {
                    set.remove(name);
                    if set.is_empty() {
                        self.pv_secrets.remove(&s);
                    }
                }
            }
        }
        let Some(refs) = refs else { return };
        for s in &refs.secrets {
            self.pv_secrets
                .entry(s.clone())
                .or_default()
                .insert(name.to_string());
        }
        self.pvs.insert(name.to_string(), refs);
    }

    pub fn set_attachment(&mut self, name: &str, node: Option<String>) {
        match node.filter(|n| !n.is_empty()) {
            Some(n) => self.attachments.insert(name.to_string(), n),
            None => self.attachments.remove(name),
        };
    }

    pub fn set_slice(&mut self, name: &str, node: Option<String>) {
        match node.filter(|n| !n.is_empty()) {
            Some(n) => self.slices.insert(name.to_string(), n),
            None => self.slices.remove(name),
        };
    }

    fn clear(&mut self, source: Source) {
        match source {
            Source::Pods => {
                self.pods.clear();
                self.referenced.clear();
            }
            Source::Pvs => {
                self.pvs.clear();
                self.pv_secrets.clear();
            }
            Source::Attachments => self.attachments.clear(),
            Source::Slices => self.slices.clear(),
        }
    }

    fn references(&self, vertex: Vertex, namespace: &str, name: &str, node: &str) -> bool {
        self.referenced
            .get(&(vertex, namespace.to_string(), name.to_string()))
            .is_some_and(|nodes| nodes.contains_key(node))
    }

    fn pv_reaches(&self, pv: &str, node: &str) -> bool {
        self.pvs
            .get(pv)
            .is_some_and(|p| self.references(Vertex::Pvc, &p.claim.0, &p.claim.1, node))
    }

    /// Whether a path leads from the object to `node` (Kubernetes' `hasPathFrom`).
    pub fn has_path(&self, start: Start, namespace: &str, name: &str, node: &str) -> bool {
        match start {
            Start::Pod => self
                .pods
                .get(&(namespace.to_string(), name.to_string()))
                .is_some_and(|p| p.node == node),
            Start::Ref(Vertex::Secret) => {
                self.references(Vertex::Secret, namespace, name, node)
                    || self
                        .pv_secrets
                        .get(&(namespace.to_string(), name.to_string()))
                        .is_some_and(|pvs| pvs.iter().any(|pv| self.pv_reaches(pv, node)))
            }
            Start::Ref(vertex) => self.references(vertex, namespace, name, node),
            Start::Pv => self.pv_reaches(name, node),
            Start::VolumeAttachment => self.attachments.get(name).is_some_and(|n| n == node),
            Start::ResourceSlice => self.slices.get(name).is_some_and(|n| n == node),
        }
    }
}

// ---- what the objects reference -------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    name: String,
    namespace: String,
    annotations: HashMap<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameRef {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NsNameRef {
    name: String,
    namespace: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EnvSource {
    secret_key_ref: Option<NameRef>,
    config_map_key_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Env {
    value_from: Option<EnvSource>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct EnvFrom {
    secret_ref: Option<NameRef>,
    config_map_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Container {
    env: Vec<Env>,
    env_from: Vec<EnvFrom>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SecretRefHolder {
    secret_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ProjectionSource {
    secret: Option<NameRef>,
    config_map: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Projected {
    sources: Vec<ProjectionSource>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SecretVolume {
    secret_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClaimVolume {
    claim_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CsiVolume {
    node_publish_secret_ref: Option<NameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Volume {
    name: String,
    secret: Option<SecretVolume>,
    config_map: Option<NameRef>,
    projected: Option<Projected>,
    persistent_volume_claim: Option<ClaimVolume>,
    ephemeral: Option<serde::de::IgnoredAny>,
    azure_file: Option<SecretVolume>,
    cephfs: Option<SecretRefHolder>,
    cinder: Option<SecretRefHolder>,
    flex_volume: Option<SecretRefHolder>,
    rbd: Option<SecretRefHolder>,
    #[serde(rename = "scaleIO")]
    scale_io: Option<SecretRefHolder>,
    iscsi: Option<SecretRefHolder>,
    storageos: Option<SecretRefHolder>,
    csi: Option<CsiVolume>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodResourceClaim {
    name: String,
    resource_claim_name: Option<String>,
    resource_claim_template_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodSpec {
    node_name: String,
    service_account_name: String,
    image_pull_secrets: Vec<NameRef>,
    init_containers: Vec<Container>,
    containers: Vec<Container>,
    ephemeral_containers: Vec<Container>,
    volumes: Vec<Volume>,
    resource_claims: Vec<PodResourceClaim>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ClaimStatus {
    name: String,
    resource_claim_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodStatus {
    resource_claim_statuses: Vec<ClaimStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pod {
    metadata: Meta,
    spec: PodSpec,
    status: PodStatus,
}

/// The secrets a pod references (Kubernetes' `VisitPodSecretNames`): image pull secrets,
/// every container's (init, regular, ephemeral) env and envFrom, and the volumes that name
/// one (secret, projected, CSI node-publish, and the in-tree drivers' secretRefs).
fn pod_secrets(spec: &PodSpec) -> Vec<&str> {
    let mut out: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for c in spec
        .init_containers
        .iter()
        .chain(&spec.containers)
        .chain(&spec.ephemeral_containers)
    {
        for e in &c.env {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                out.push(&r.name);
            }
        }
        for e in &c.env_from {
            if let Some(r) = &e.secret_ref {
                out.push(&r.name);
            }
        }
    }
    for v in &spec.volumes {
        if let Some(s) = &v.secret {
            out.push(&s.secret_name);
        }
        if let Some(s) = v.azure_file.as_ref().filter(|s| !s.secret_name.is_empty()) {
            out.push(&s.secret_name);
        }
        for holder in [&v.cephfs, &v.cinder, &v.flex_volume, &v.rbd, &v.scale_io]
            .into_iter()
            .chain([&v.iscsi, &v.storageos])
            .flatten()
        {
            if let Some(r) = &holder.secret_ref {
                out.push(&r.name);
            }
        }
        if let Some(r) = v
            .csi
            .as_ref()
            .and_then(|c| c.node_publish_secret_ref.as_ref())
        {
            out.push(&r.name);
        }
        for src in v.projected.iter().flat_map(|p| &p.sources) {
            if let Some(s) = &src.secret {
                out.push(&s.name);
            }
        }
    }
    out
}

/// The config maps a pod references (Kubernetes' `VisitPodConfigmapNames`).
fn pod_config_maps(spec: &PodSpec) -> Vec<&str> {
    let mut out = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .chain(&spec.containers)
        .chain(&spec.ephemeral_containers)
    {
        for e in &c.env {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                out.push(r.name.as_str());
            }
        }
        for e in &c.env_from {
            if let Some(r) = &e.config_map_ref {
                out.push(&r.name);
            }
        }
    }
    for v in &spec.volumes {
        if let Some(c) = &v.config_map {
            out.push(&c.name);
        }
        for src in v.projected.iter().flat_map(|p| &p.sources) {
            if let Some(c) = &src.config_map {
                out.push(&c.name);
            }
        }
    }
    out
}

/// Whether a pod spec references a secret at all, even by an empty name (what
/// `VisitPodSecretNames` visits; the ServiceAccount plugin refuses mirror pods that do).
/// A spec that does not decode references nothing.
pub fn references_secrets(spec: &serde_json::Value) -> bool {
    !pod_secrets(&PodSpec::deserialize(spec).unwrap_or_default()).is_empty()
}

/// Whether a pod spec names any secret, and any config map (NodeRestriction refuses mirror
/// pods that do). A spec that does not decode names nothing.
pub fn names_secrets_or_config_maps(spec: &serde_json::Value) -> (bool, bool) {
    let spec: PodSpec = PodSpec::deserialize(spec).unwrap_or_default();
    let named = |v: Vec<&str>| v.iter().any(|n| !n.is_empty());
    (named(pod_secrets(&spec)), named(pod_config_maps(&spec)))
}

/// A pod's namespace and name and, when it is bound to a node, what it references.
/// `None` when the bytes are not a pod.
pub fn pod_refs(json: &[u8]) -> Option<(Key, Option<PodRefs>)> {
    let pod: Pod = serde_json::from_slice(json).ok()?;
    let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
    if pod.spec.node_name.is_empty() {
        return Some((key, None));
    }
    let mut refs = Vec::new();
    // A node must not be able to create a pod that grants it access to other objects.
    if !pod.metadata.annotations.contains_key(MIRROR_POD_ANNOTATION) {
        let spec = &pod.spec;
        if !spec.service_account_name.is_empty() {
            refs.push((Vertex::ServiceAccount, spec.service_account_name.clone()));
        }
        refs.extend(
            pod_secrets(spec)
                .into_iter()
                .map(|n| (Vertex::Secret, n.to_string())),
        );
        refs.extend(
            pod_config_maps(spec)
                .into_iter()
                .map(|n| (Vertex::ConfigMap, n.to_string())),
        );
        for v in &spec.volumes {
            if let Some(c) = &v.persistent_volume_claim {
                refs.push((Vertex::Pvc, c.claim_name.clone()));
            } else if v.ephemeral.is_some() {
                // The claim of a generic ephemeral volume is named `<pod>-<volume>`.
                refs.push((Vertex::Pvc, format!("{}-{}", pod.metadata.name, v.name)));
            }
        }
        for c in &spec.resource_claims {
            let name = match (&c.resource_claim_name, &c.resource_claim_template_name) {
                (Some(n), _) => Some(n.clone()),
                (None, Some(_)) => pod
                    .status
                    .resource_claim_statuses
                    .iter()
                    .find(|s| s.name == c.name)
                    .and_then(|s| s.resource_claim_name.clone()),
                (None, None) => None,
            };
            if let Some(n) = name {
                refs.push((Vertex::ResourceClaim, n));
            }
        }
        refs.retain(|(_, n)| !n.is_empty());
        refs.sort();
        refs.dedup();
    }
    Some((
        key,
        Some(PodRefs {
            node: pod.spec.node_name,
            refs,
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AzureFilePv {
    secret_name: String,
    secret_namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SecretRefPv {
    secret_ref: Option<NsNameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CsiPv {
    node_publish_secret_ref: Option<NsNameRef>,
    node_stage_secret_ref: Option<NsNameRef>,
    node_expand_secret_ref: Option<NsNameRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PvSpec {
    claim_ref: Option<NsNameRef>,
    azure_file: Option<AzureFilePv>,
    cephfs: Option<SecretRefPv>,
    cinder: Option<SecretRefPv>,
    flex_volume: Option<SecretRefPv>,
    rbd: Option<SecretRefPv>,
    #[serde(rename = "scaleIO")]
    scale_io: Option<SecretRefPv>,
    iscsi: Option<SecretRefPv>,
    storageos: Option<SecretRefPv>,
    csi: Option<CsiPv>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pv {
    metadata: Meta,
    spec: PvSpec,
}

/// A persistent volume's name and, when it is claimed, the claim and the secrets the
/// kubelet reads for it (Kubernetes' `VisitPVSecretNames` with `kubeletVisible`; a secret
/// reference without a namespace is in the claim's namespace for the drivers that say so).
pub fn pv_refs(json: &[u8]) -> Option<(String, Option<PvRefs>)> {
    let pv: Pv = serde_json::from_slice(json).ok()?;
    let name = pv.metadata.name;
    let Some(claim) = pv.spec.claim_ref.as_ref() else {
        return Some((name, None));
    };
    let claim_ns = claim.namespace.clone();
    let mut secrets = Vec::new();
    let mut push = |ns: &str, name: &str| {
        if !name.is_empty() {
            secrets.push((ns.to_string(), name.to_string()));
        }
    };
    let s = &pv.spec;
    if let Some(a) = &s.azure_file {
        let ns = a
            .secret_namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&claim_ns);
        push(ns, &a.secret_name);
    }
    // cinder and storageos use the reference's namespace as it is.
    for (holder, default_claim_ns) in [
        (&s.cephfs, true),
        (&s.cinder, false),
        (&s.flex_volume, true),
        (&s.rbd, true),
        (&s.scale_io, true),
        (&s.iscsi, true),
        (&s.storageos, false),
    ] {
        if let Some(r) = holder.as_ref().and_then(|h| h.secret_ref.as_ref()) {
            let ns = if default_claim_ns && r.namespace.is_empty() {
                &claim_ns
            } else {
                &r.namespace
            };
            push(ns, &r.name);
        }
    }
    if let Some(c) = &s.csi {
        for r in [
            &c.node_publish_secret_ref,
            &c.node_stage_secret_ref,
            &c.node_expand_secret_ref,
        ]
        .into_iter()
        .flatten()
        {
            push(&r.namespace, &r.name);
        }
    }
    Some((
        name,
        Some(PvRefs {
            claim: (claim.namespace.clone(), claim.name.clone()),
            secrets,
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct NodeNameSpec {
    node_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WithNodeName {
    metadata: Meta,
    spec: NodeNameSpec,
}

/// A VolumeAttachment's or ResourceSlice's name and `spec.nodeName`.
fn node_name_of(json: &[u8]) -> Option<(String, String)> {
    let o: WithNodeName = serde_json::from_slice(json).ok()?;
    Some((o.metadata.name, o.spec.node_name))
}

// ---- following the watch cache --------------------------------------------------------

/// The resources the graph is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Pods,
    Pvs,
    Attachments,
    Slices,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::Pods,
        Source::Pvs,
        Source::Attachments,
        Source::Slices,
    ];

    /// The served resource, if this apiserver serves it.
    fn resource(self) -> Option<&'static ResourceInfo> {
        let (group, plural) = match self {
            Source::Pods => ("", "pods"),
            Source::Pvs => ("", "persistentvolumes"),
            Source::Attachments => ("storage.k8s.io", "volumeattachments"),
            Source::Slices => ("resource.k8s.io", "resourceslices"),
        };
        registry::all()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
    }
}

fn apply(graph: &mut Graph, source: Source, entry: &Entry, deleted: bool) {
    match source {
        Source::Pods => {
            if let Some((key, refs)) = pod_refs(&entry.json) {
                graph.set_pod(key, if deleted { None } else { refs });
            }
        }
        Source::Pvs => {
            if let Some((name, refs)) = pv_refs(&entry.json) {
                graph.set_pv(&name, if deleted { None } else { refs });
            }
        }
        Source::Attachments => {
            if let Some((name, node)) = node_name_of(&entry.json) {
                graph.set_attachment(&name, (!deleted).then_some(node));
            }
        }
        Source::Slices => {
            if let Some((name, node)) = node_name_of(&entry.json) {
                graph.set_slice(&name, (!deleted).then_some(node));
            }
        }
    }
}

/// How long a decision that would deny waits for the graph to apply what the cache holds.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// The graph, kept current from the watch cache.
pub struct NodeGraph {
    graph: RwLock<Graph>,
    /// `None` only for graphs built by hand in tests.
    cache: Option<Arc<WatchCache>>,
    /// The revision of the last change applied from each source (or of the state loaded).
    applied: Mutex<HashMap<Source, i64>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl NodeGraph {
    /// The graph; [`Self::start`] fills it.
    pub fn new(cache: Arc<WatchCache>) -> Arc<NodeGraph> {
        Arc::new(NodeGraph {
            graph: RwLock::new(Graph::default()),
            cache: Some(cache),
            applied: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    /// A graph with fixed contents, followed by nothing.
    #[cfg(test)]
    pub fn fixed(graph: Graph) -> Arc<NodeGraph> {
        Arc::new(NodeGraph {
            graph: RwLock::new(graph),
            cache: None,
            applied: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    /// Follows every source this apiserver serves, in the background, for the process's life.
    pub fn start(self: &Arc<Self>) {
        for source in Source::ALL {
            if source.resource().is_some() {
                tokio::spawn(self.clone().follow(source));
            }
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Graph> {
        self.graph.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Graph> {
        self.graph.write().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, source: Source, rev: i64) {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source, rev);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether every change the cache holds for the sources has been applied.
    pub fn caught_up(&self) -> bool {
        let Some(cache) = &self.cache else {
            return true;
        };
        let applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        Source::ALL.iter().all(|s| {
            let Some(res) = s.resource() else { return true };
            let Some(cacher) = cache.cacher(res) else {
                return true;
            };
            applied
                .get(s)
                .is_some_and(|rev| *rev >= cacher.last_change())
        })
    }

    /// Waits (at most `timeout`) until the cache holds every write etcd has committed and
    /// the graph has applied them; false on timeout. A node that asks right after its pod
    /// was created therefore sees the pod's references.
    pub async fn catch_up(&self, timeout: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(cache) = &self.cache
            && let Ok(Ok(rev)) = tokio::time::timeout(timeout, cache.etcd_revision()).await
            && cache.wait_for(rev, timeout).await.is_err()
        {
            return false;
        }
        loop {
            if self.caught_up() {
                return true;
            }
            // The cache may move on while nothing changes here (an event not yet received):
            // wake at least every 50 ms to look again.
            let step = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(50));
            if step.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(step, rx.changed()).await;
        }
    }

    async fn follow(self: Arc<Self>, source: Source) {
        let Some(res) = source.resource() else { return };
        let Some(cache) = self.cache.clone() else {
            return;
        };
        loop {
            if !cache.wait_ready(Duration::from_secs(30)).await {
                continue;
            }
            let Some(cacher) = cache.cacher(res) else {
                return;
            };
            let start = match cacher.watch(&cacher.prefix, WatchFrom::Now) {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            {
                let mut g = self.write();
                g.clear(source);
                for e in &start.initial {
                    apply(&mut g, source, e, false);
                }
            }
            self.mark(source, start.rev);
            tracing::debug!(
                resource = res.plural,
                objects = start.initial.len(),
                revision = start.rev,
                "node authorizer graph loaded"
            );
            let mut live = start.live;
            loop {
                match live.recv().await {
                    Ok(ev) => {
                        apply(
                            &mut self.write(),
                            source,
                            &ev.object,
                            ev.kind == EventType::Deleted,
                        );
                        self.mark(source, ev.rev());
                    }
                    // Fell a whole broadcast behind: load the state again.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            resource = res.plural,
                            missed,
                            "node authorizer graph fell behind the watch cache; reloading"
                        );
                        break;
                    }
                    // The cache re-listed: follow it again.
                    Err(RecvError::Closed) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(ns: &str, name: &str, node: &str, spec: Value) -> Value {
        let mut spec = spec;
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})
    }

    fn set(g: &mut Graph, p: &Value) {
        let (key, refs) = pod_refs(&serde_json::to_vec(p).unwrap()).unwrap();
        g.set_pod(key, refs);
    }

    fn secret(g: &Graph, ns: &str, name: &str, node: &str) -> bool {
        g.has_path(Start::Ref(Vertex::Secret), ns, name, node)
    }

    #[test]
    fn bound_pod_grants_its_node_only_and_unbound_grants_nothing() {
        let mut g = Graph::default();
        let spec =
            json!({"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}]});
        set(&mut g, &pod("ns", "p", "", spec.clone()));
        assert!(!secret(&g, "ns", "s", "n1"));
        assert!(!g.has_path(Start::Pod, "ns", "p", "n1"));
        set(&mut g, &pod("ns", "p", "n1", spec.clone()));
        assert!(secret(&g, "ns", "s", "n1"));
        assert!(g.has_path(Start::Pod, "ns", "p", "n1"));
        assert!(!secret(&g, "ns", "s", "n2"));
        assert!(
            !secret(&g, "other", "s", "n1"),
            "references are in the pod's namespace"
        );
    }

    #[test]
    fn rebound_pod_moves_access_and_deleted_pod_removes_it() {
        let mut g = Graph::default();
        let spec = json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]});
        set(&mut g, &pod("ns", "p", "n1", spec.clone()));
        set(&mut g, &pod("ns", "p", "n2", spec.clone()));
        assert!(!secret(&g, "ns", "s", "n1"));
        assert!(secret(&g, "ns", "s", "n2"));
        g.set_pod(("ns".into(), "p".into()), None);
        assert!(!secret(&g, "ns", "s", "n2"));
        assert!(g.referenced.is_empty() && g.pods.is_empty());
    }

    #[test]
    fn two_pods_sharing_a_secret_keep_it_until_both_are_gone() {
        let mut g = Graph::default();
        let spec = json!({"imagePullSecrets": [{"name": "pull"}]});
        set(&mut g, &pod("ns", "a", "n1", spec.clone()));
        set(&mut g, &pod("ns", "b", "n1", spec.clone()));
        g.remove_pod(&("ns".into(), "a".into()));
        assert!(secret(&g, "ns", "pull", "n1"));
        g.remove_pod(&("ns".into(), "b".into()));
        assert!(!secret(&g, "ns", "pull", "n1"));
    }

    #[test]
    fn every_secret_path_of_a_pod_is_followed() {
        let spec = json!({
            "imagePullSecrets": [{"name": "pull"}],
            "initContainers": [{"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]}],
            "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "envfrom"}}]}],
            "ephemeralContainers": [{"name": "e", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "eph-env", "key": "k"}}}]}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "projected": {"sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "proj-cm"}}]}},
                {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                {"name": "d", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph"}}},
                {"name": "e", "azureFile": {"secretName": "azure", "shareName": "s"}},
                {"name": "f", "rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": "rbd"}}},
                {"name": "g", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0, "secretRef": {"name": "iscsi"}}},
            ],
        });
        let mut g = Graph::default();
        set(&mut g, &pod("ns", "p", "n1", spec));
        for s in [
            "pull", "init-env", "envfrom", "eph-env", "vol", "proj", "csi", "ceph", "azure", "rbd",
            "iscsi",
        ] {
            assert!(secret(&g, "ns", s, "n1"), "secret {s}");
        }
        assert!(!secret(&g, "ns", "proj-cm", "n1"));
        assert!(g.has_path(Start::Ref(Vertex::ConfigMap), "ns", "proj-cm", "n1"));
    }

    #[test]
    fn config_maps_claims_and_service_accounts_are_followed() {
        let spec = json!({
            "serviceAccountName": "sa",
            "containers": [{"name": "c",
                "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "envfrom-cm"}}]}],
            "volumes": [
                {"name": "cm", "configMap": {"name": "vol-cm"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            ],
            "resourceClaims": [{"name": "gpu", "resourceClaimName": "gpu-claim"},
                               {"name": "tpl", "resourceClaimTemplateName": "t"}],
        });
        let mut p = pod("ns", "p", "n1", spec);
        p["status"] =
            json!({"resourceClaimStatuses": [{"name": "tpl", "resourceClaimName": "p-tpl-x"}]});
        let mut g = Graph::default();
        set(&mut g, &p);
        let has = |v, n: &str| g.has_path(Start::Ref(v), "ns", n, "n1");
        assert!(has(Vertex::ConfigMap, "env-cm"));
        assert!(has(Vertex::ConfigMap, "envfrom-cm"));
        assert!(has(Vertex::ConfigMap, "vol-cm"));
        assert!(has(Vertex::Pvc, "claim"));
        assert!(has(Vertex::Pvc, "p-scratch"), "generic ephemeral claim");
        assert!(has(Vertex::ServiceAccount, "sa"));
        assert!(has(Vertex::ResourceClaim, "gpu-claim"));
        assert!(has(Vertex::ResourceClaim, "p-tpl-x"));
    }

    #[test]
    fn mirror_pods_grant_only_themselves() {
        let spec = json!({"serviceAccountName": "sa", "volumes": [{"name": "v", "secret": {"secretName": "s"}}]});
        let mut p = pod("ns", "m", "n1", spec);
        p["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "hash"});
        let mut g = Graph::default();
        set(&mut g, &p);
        assert!(g.has_path(Start::Pod, "ns", "m", "n1"));
        assert!(!secret(&g, "ns", "s", "n1"));
        assert!(!g.has_path(Start::Ref(Vertex::ServiceAccount), "ns", "sa", "n1"));
    }

    #[test]
    fn persistent_volumes_reach_a_node_through_their_claim() {
        let mut g = Graph::default();
        let pv = json!({
            "metadata": {"name": "pv1"},
            "spec": {"claimRef": {"namespace": "ns", "name": "claim"},
                     "csi": {"driver": "d", "volumeHandle": "h",
                             "nodePublishSecretRef": {"namespace": "sec", "name": "publish"},
                             "controllerPublishSecretRef": {"namespace": "sec", "name": "controller"}},
                     "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph"}}},
        });
        let (name, refs) = pv_refs(&serde_json::to_vec(&pv).unwrap()).unwrap();
        g.set_pv(&name, refs);
        assert!(
            !g.has_path(Start::Pv, "", "pv1", "n1"),
            "claim not used by a pod yet"
        );
        set(
            &mut g,
            &pod(
                "ns",
                "p",
                "n1",
                json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "claim"}}]}),
            ),
        );
        assert!(g.has_path(Start::Pv, "", "pv1", "n1"));
        assert!(!g.has_path(Start::Pv, "", "pv1", "n2"));
        assert!(secret(&g, "sec", "publish", "n1"));
        assert!(
            !secret(&g, "sec", "controller", "n1"),
            "not visible to the kubelet"
        );
        assert!(
            secret(&g, "ns", "ceph", "n1"),
            "defaults to the claim's namespace"
        );
        g.set_pv("pv1", None);
        assert!(!secret(&g, "sec", "publish", "n1"));
        assert!(g.pv_secrets.is_empty());
    }

    #[test]
    fn attachments_and_slices_name_their_node() {
        let mut g = Graph::default();
        let va = json!({"metadata": {"name": "va"}, "spec": {"nodeName": "n1", "attacher": "a"}});
        let (name, node) = node_name_of(&serde_json::to_vec(&va).unwrap()).unwrap();
        g.set_attachment(&name, Some(node));
        assert!(g.has_path(Start::VolumeAttachment, "", "va", "n1"));
        assert!(!g.has_path(Start::VolumeAttachment, "", "va", "n2"));
        g.set_attachment("va", None);
        assert!(!g.has_path(Start::VolumeAttachment, "", "va", "n1"));
        g.set_slice("s", Some("n2".into()));
        assert!(g.has_path(Start::ResourceSlice, "", "s", "n2"));
    }
}
