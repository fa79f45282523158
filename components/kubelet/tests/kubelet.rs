//! kadm-kubelet against real etcd + kadm-apiserver and a private, real containerd: node
//! registration, lease and readiness; pods that run, crash, complete and are deleted;
//! a kubelet restart that leaves containers alone.
//!
//! The kubelet authenticates as `system:node:<name>` in `system:nodes`, so the apiserver's
//! Node authorizer judges every request. Each test owns its containerd (own socket, CNI
//! bridge, IPAM dir), its pod CIDR and its cgroup root, and removes them at the end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kadm_e2e::TestCluster;
use kadm_e2e::component::wait_for;
use kadm_e2e::containerd::TestContainerd;
use kadm_e2e::process::{Process, tail};
use kadm_kubelet::cri::remote::RemoteRuntime;
use kadm_kubelet::cri::{Runtime, api};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// One kubelet with its cluster and containerd; stopped and cleaned up on drop.
struct Node1 {
    kubelet: Option<Process>,
    name: String,
    cidr: String,
    cgroup_root: String,
    args: Vec<OsString>,
    log: PathBuf,
    admin: Client,
    socket: PathBuf,
    // Drop order: the kubelet, then containerd, then the cluster.
    ctd: TestContainerd,
    _cluster: TestCluster,
}

fn unique() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (std::process::id() << 8) ^ nanos
}

impl Node1 {
    async fn start() -> anyhow::Result<Node1> {
        let cluster = TestCluster::start().await?;
        let ctd = TestContainerd::start()?;
        let admin = cluster.kube_client().await?;
        let socket = ctd.socket().to_path_buf();
        let u = unique();
        let name = format!("kubelet-{:x}", u & 0xffff);
        // A pod CIDR of this test's own (the bridge gets its first address).
        let cidr = format!("10.245.{}.0/24", u % 250 + 1);
        let cgroup_root = format!("/kadm-e2e-{:x}", u);
        let kubeconfig =
            cluster.kubeconfig_for(&format!("system:node:{name}"), Some("system:nodes"))?;
        let root_dir = cluster.dir().join("kubelet");
        let health = kadm_e2e::ports::free_port()?;
        let driver = if ctd.config().systemd_cgroup {
            "systemd"
        } else {
            "cgroupfs"
        };
        let args: Vec<OsString> = [
            "--kubeconfig".into(),
            kubeconfig.into_os_string(),
            "--node-name".into(),
            name.clone().into(),
            "--container-runtime-endpoint".into(),
            format!("unix://{}", socket.display()).into(),
            "--root-dir".into(),
            root_dir.into_os_string(),
            "--pod-log-dir".into(),
            cluster.dir().join("pod-logs").into_os_string(),
            "--cni-conf-dir".into(),
            ctd.cni_conf_dir().as_os_str().to_owned(),
            "--cni-bridge".into(),
            ctd.bridge_name().into(),
            "--cni-ipam-data-dir".into(),
            ctd.cni_data_dir().as_os_str().to_owned(),
            "--image-fs-dir".into(),
            ctd.dir().as_os_str().to_owned(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--cgroup-driver".into(),
            driver.into(),
            "--cgroup-root".into(),
            cgroup_root.clone().into(),
            "--healthz-port".into(),
            health.to_string().into(),
            // The shared test machine's disk can be nearly full (which the default
            // thresholds rightly report as DiskPressure); measure against small ones.
            "--eviction-hard".into(),
            "memory.available<1Mi,nodefs.available<1Mi,imagefs.available<1Mi".into(),
        ]
        .to_vec();
        let log = cluster.dir().join("kubelet.log");
        let mut n = Node1 {
            kubelet: None,
            name,
            cidr,
            cgroup_root,
            args,
            log,
            admin,
            socket,
            ctd,
            _cluster: cluster,
        };
        n.spawn()?;
        Ok(n)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let p = Process::spawn(
            "kadm-kubelet",
            Path::new(env!("CARGO_BIN_EXE_kadm-kubelet")),
            &self.args,
            &[
                ("KADM_LOG", "info,kadm_kubelet=debug"),
                ("KADM_LOG_FORMAT", "text"),
            ],
            &self.log,
        )?;
        self.kubelet = Some(p);
        Ok(())
    }

    fn runtime(&self) -> RemoteRuntime {
        RemoteRuntime::new(&format!("unix://{}", self.socket.display())).expect("cri client")
    }

    /// Registers, then gets its pod CIDR (what the node IPAM controller would do).
    async fn ready(&self) -> Node {
        let nodes: Api<Node> = Api::all(self.admin.clone());
        let name = self.name.clone();
        wait_for("the node to register", WAIT, || {
            let nodes = nodes.clone();
            let name = name.clone();
            async move { nodes.get_opt(&name).await.ok().flatten() }
        })
        .await;
        nodes
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"podCIDR": self.cidr, "podCIDRs": [self.cidr]}})),
            )
            .await
            .expect("set the pod CIDR");
        wait_for("the node to be Ready", WAIT, || {
            let nodes = nodes.clone();
            let name = name.clone();
            async move {
                let n = nodes.get(&name).await.ok()?;
                let ready = n
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(n)
            }
        })
        .await
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), "default")
    }

    async fn create_pod(&self, name: &str, restart_policy: &str, command: &[&str]) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": self.name,
                "restartPolicy": restart_policy,
                "terminationGracePeriodSeconds": 2,
                "containers": [{
                    "name": "c",
                    "image": self.ctd.test_image(),
                    "imagePullPolicy": "Never",
                    "command": command,
                }]
            }
        }))
        .expect("pod");
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool + Copy) -> Pod {
        let api = self.pods();
        wait_for(what, WAIT, || {
            let api = api.clone();
            async move { api.get(name).await.ok().filter(|p| check(p)) }
        })
        .await
    }

    /// Deletes every pod and waits until the kubelet has removed them (CNI DEL included).
    async fn delete_all_pods(&self) {
        let api = self.pods();
        let _ = api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
        wait_for("every pod to be gone", WAIT, || {
            let api = api.clone();
            async move {
                let l = api.list(&ListParams::default()).await.ok()?;
                l.items.is_empty().then_some(())
            }
        })
        .await;
    }
}

impl Drop for Node1 {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- kadm-kubelet log ({}) ----\n{}\n----",
                self.log.display(),
                tail(&self.log, 120)
            );
        }
        if let Some(mut k) = self.kubelet.take() {
            k.terminate(Duration::from_secs(5));
        }
        remove_cgroup_tree(&self.cgroup_root);
    }
}

/// Removes the test's cgroup root bottom-up in every hierarchy (empty directories only).
fn remove_cgroup_tree(root: &str) {
    let rel = root.trim_start_matches('/');
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut tops: Vec<PathBuf> = vec![Path::new("/sys/fs/cgroup").join(rel)];
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            tops.push(e.path().join(rel));
        }
    }
    for top in tops {
        if top.is_dir() {
            rmdir_bottom_up(&top);
        }
    }
}

fn rmdir_bottom_up(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_bottom_up(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn container_status(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

fn ipv4_in(cidr: &str, ip: &str) -> bool {
    let (net, _) = cidr.split_once('/').unwrap_or((cidr, ""));
    let prefix: Vec<&str> = net.split('.').take(3).collect();
    ip.split('.').take(3).collect::<Vec<_>>() == prefix
}

async fn sandboxes_of(rt: &RemoteRuntime, uid: &str) -> (usize, usize) {
    let sel =
        std::collections::HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]);
    let s = rt
        .list_pod_sandboxes(Some(api::PodSandboxFilter {
            label_selector: sel.clone(),
            ..Default::default()
        }))
        .await
        .expect("list sandboxes");
    let c = rt
        .list_containers(Some(api::ContainerFilter {
            label_selector: sel,
            ..Default::default()
        }))
        .await
        .expect("list containers");
    (s.len(), c.len())
}

#[tokio::test]
async fn node_registers_renews_its_lease_and_becomes_ready() -> anyhow::Result<()> {
    let n = Node1::start().await?;
    let node = n.ready().await;
    let status = node.status.clone().context("status")?;
    let info = status.node_info.clone().context("nodeInfo")?;
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );
    assert!(info.kubelet_version.starts_with("v1.33."), "{info:?}");
    assert_eq!(
        (info.operating_system.as_str(), info.architecture.as_str()),
        ("linux", "amd64")
    );
    assert_eq!(info.boot_id.len(), 36);
    assert!(!info.kernel_version.is_empty() && !info.os_image.is_empty());
    let cap = status.capacity.clone().context("capacity")?;
    assert_eq!(cap["pods"].0, "110");
    assert!(
        cap["memory"].0.ends_with("Ki")
            && cap.contains_key("ephemeral-storage")
            && cap.contains_key("cpu")
    );
    let addresses = status.addresses.clone().context("addresses")?;
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1")
    );
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == n.name)
    );
    let conds = status.conditions.clone().context("conditions")?;
    let reason = |t: &str| {
        conds
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.reason.clone())
    };
    assert_eq!(reason("Ready").as_deref(), Some("KubeletReady"));
    assert_eq!(
        reason("MemoryPressure").as_deref(),
        Some("KubeletHasSufficientMemory")
    );
    assert_eq!(
        reason("DiskPressure").as_deref(),
        Some("KubeletHasNoDiskPressure")
    );
    assert_eq!(
        reason("PIDPressure").as_deref(),
        Some("KubeletHasSufficientPID")
    );
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&n.name));
    assert!(
        std::fs::read_to_string(n.ctd.cni_conf_dir().join("10-kadm.conflist"))?.contains(&n.cidr)
    );

    let leases: Api<Lease> = Api::namespaced(n.admin.clone(), "kube-node-lease");
    let lease = leases.get(&n.name).await?;
    let spec = lease.spec.clone().context("lease spec")?;
    assert_eq!(spec.holder_identity.as_deref(), Some(n.name.as_str()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert_eq!(
        lease
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map(|o| o.uid.clone()),
        node.metadata.uid.clone()
    );
    // Renewed every 10 s.
    let first = spec.renew_time.context("renewTime")?;
    let renewed = wait_for("the lease to be renewed", Duration::from_secs(25), || {
        let leases = leases.clone();
        let name = n.name.clone();
        let first = first.clone();
        async move {
            let t = leases.get(&name).await.ok()?.spec?.renew_time?;
            (t.0 > first.0).then_some(t)
        }
    })
    .await;
    let gap = renewed.0.duration_since(first.0).as_secs_f64();
    assert!((8.0..=13.0).contains(&gap), "renewed after {gap} s");
    Ok(())
}

#[tokio::test]
async fn pods_run_crash_loop_complete_and_are_cleaned_up() -> anyhow::Result<()> {
    let n = Node1::start().await?;
    n.ready().await;
    let sleeper = n.create_pod("sleeper", "Always", &["sleep", "3600"]).await;
    let crasher = n
        .create_pod("crasher", "Always", &["sh", "-c", "exit 1"])
        .await;
    n.create_pod("once", "Never", &["sh", "-c", "exit 0"]).await;

    let running = n
        .wait_pod("sleeper", "sleeper Running with an IP", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some("Running") && s.pod_ip.is_some())
        })
        .await;
    let s = running.status.clone().context("status")?;
    let ip = s.pod_ip.clone().context("podIP")?;
    assert!(ipv4_in(&n.cidr, &ip), "{ip} not in {}", n.cidr);
    assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
    let c = container_status(&running).context("container status")?;
    assert!(
        c.ready
            && c.container_id
                .as_deref()
                .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert!(!c.image_id.is_empty());
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert!(
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == kind && c.status == "True"),
            "{kind} in {:?}",
            s.conditions
        );
    }

    let done = n
        .wait_pod("once", "the Never pod Succeeded", |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
        })
        .await;
    let t = container_status(&done)
        .and_then(|c| c.state?.terminated)
        .context("terminated state")?;
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));

    let looping = n
        .wait_pod("crasher", "crasher in CrashLoopBackOff", |p| {
            container_status(p).is_some_and(|c| {
                c.state
                    .and_then(|s| s.waiting)
                    .and_then(|w| w.reason)
                    .as_deref()
                    == Some("CrashLoopBackOff")
            })
        })
        .await;
    let c = container_status(&looping).context("crasher status")?;
    let message = c
        .state
        .clone()
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert!(
        message.starts_with("back-off 10s restarting failed container=c pod=crasher_default("),
        "{message}"
    );
    let last = c
        .last_state
        .and_then(|s| s.terminated)
        .context("lastState")?;
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    let first_count = c.restart_count;
    assert!(first_count >= 1);
    // The 10 s back-off ends and it runs (and crashes) again.
    n.wait_pod("crasher", "crasher's restartCount to grow", |p| {
        container_status(p).is_some_and(|c| c.restart_count > first_count)
    })
    .await;

    // Deleting the sleeper removes its containers and sandbox from the runtime.
    let uid = sleeper.metadata.uid.clone().context("uid")?;
    let rt = n.runtime();
    assert_eq!(sandboxes_of(&rt, &uid).await.0, 1);
    n.pods().delete("sleeper", &DeleteParams::default()).await?;
    let api = n.pods();
    wait_for("the sleeper to be gone", WAIT, || {
        let api = api.clone();
        async move { api.get_opt("sleeper").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert_eq!(sandboxes_of(&rt, &uid).await, (0, 0));
    let _ = crasher;

    // Events as the kubelet writes them (core/v1, source kubelet on this node), allowed to
    // a node by the apiserver.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(n.admin.clone(), "default");
    let reasons = wait_for("the sleeper's events", WAIT, || {
        let events = events.clone();
        let node = n.name.clone();
        async move {
            let l = events
                .list(&ListParams::default().fields("involvedObject.name=sleeper"))
                .await
                .ok()?;
            let reasons: Vec<String> = l
                .items
                .iter()
                .filter(|e| {
                    e.source.as_ref().and_then(|s| s.host.as_deref()) == Some(node.as_str())
                })
                .filter(|e| {
                    e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("kubelet")
                })
                .filter_map(|e| e.reason.clone())
                .collect();
            ["Pulled", "Created", "Started", "Killing"]
                .iter()
                .all(|r| reasons.iter().any(|x| x == r))
                .then_some(reasons)
        }
    })
    .await;
    assert!(!reasons.iter().any(|r| r == "Failed"), "{reasons:?}");
    n.delete_all_pods().await;
    let log = std::fs::read_to_string(&n.log)?;
    for bad in [
        "cannot update the pod status",
        "pod sync failed",
        "could not write event",
    ] {
        assert!(!log.contains(bad), "kubelet logged {bad:?}:\n{log}");
    }
    Ok(())
}

#[tokio::test]
async fn a_restarted_kubelet_keeps_running_containers() -> anyhow::Result<()> {
    let mut n = Node1::start().await?;
    n.ready().await;
    n.create_pod("keeper", "Always", &["sleep", "3600"]).await;
    let before = n
        .wait_pod("keeper", "keeper Running", |p| {
            container_status(p).is_some_and(|c| c.state.is_some_and(|s| s.running.is_some()))
        })
        .await;
    let id = container_status(&before)
        .and_then(|c| c.container_id)
        .context("containerID")?;

    if let Some(mut k) = n.kubelet.take() {
        k.terminate(Duration::from_secs(5));
    }
    n.spawn()?;
    // The new kubelet has synced the pod once it reports it again; the container is the
    // same one, never restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = n
        .wait_pod("keeper", "keeper still Running", |p| {
            container_status(p).is_some_and(|c| c.state.is_some_and(|s| s.running.is_some()))
        })
        .await;
    let c = container_status(&after).context("status")?;
    assert_eq!(c.container_id.as_deref(), Some(id.as_str()));
    assert_eq!(c.restart_count, 0);
    let rt = n.runtime();
    let uid = after.metadata.uid.clone().context("uid")?;
    assert_eq!(sandboxes_of(&rt, &uid).await, (1, 1), "nothing recreated");
    assert!(
        std::fs::read_to_string(&n.log)?
            .matches("kadm-kubelet starting")
            .count()
            == 2,
        "the kubelet really restarted"
    );
    n.delete_all_pods().await;
    Ok(())
}
