//! The pod worker's state machine against the fake runtime and a fake clock.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use serde_json::json;

use super::*;
use crate::clock::FakeClock;
use crate::cri::fake::FakeRuntime;
use crate::options::CgroupDriver;

struct Harness {
    rt: FakeRuntime,
    clock: FakeClock,
    syncer: Syncer<FakeRuntime, FakeClock>,
    node: NodeView,
}

fn objects() -> ObjectSource {
    ObjectSource::Fixed {
        config_maps: HashMap::from([(
            ("ns".to_string(), "cm".to_string()),
            BTreeMap::from([("k".to_string(), "v".to_string())]),
        )]),
        secrets: HashMap::new(),
    }
}

fn harness() -> Harness {
    let clock = FakeClock::default();
    let rt = FakeRuntime::new(clock.clone());
    Harness {
        syncer: syncer_for(&rt, &clock),
        rt,
        clock,
        node: NodeView {
            uid: "node-uid".into(),
            name: "n1".into(),
            ip: Some("192.0.2.10".parse().expect("ip")),
            allocatable_cpu_milli: 2000,
            allocatable_memory: 1 << 30,
            memory_capacity: 2 << 30,
            runtime_ready: true,
            ..NodeView::default()
        },
    }
}

fn syncer_for(rt: &FakeRuntime, clock: &FakeClock) -> Syncer<FakeRuntime, FakeClock> {
    Syncer::new(
        Arc::new(rt.clone()),
        clock.clone(),
        PodSettings {
            pod_log_dir: std::env::temp_dir().join("kadm-kubelet-unit-logs"),
            cgroup_driver: CgroupDriver::Cgroupfs,
            cgroup_root: "/".into(),
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            host_dns: crate::cri::api::DnsConfig::default(),
            node_hostname: "n1".into(),
        },
        Recorder::for_tests(),
        objects(),
        (Duration::from_secs(10), Duration::from_secs(300)),
    )
}

fn pod(spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["nodeName"] = json!("n1");
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": spec
    }))
    .expect("pod")
}

impl Harness {
    /// One sync; the status is stored on the pod as the apiserver would.
    async fn sync(&self, pod: &mut Pod) -> Outcome {
        let out = self.syncer.sync(pod, &self.node).await.expect("sync");
        pod.status = Some(out.status.clone());
        out
    }
}

fn cs<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .expect(name)
}

fn waiting_reason(c: &ContainerStatus) -> Option<String> {
    c.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn terminated_reason(c: &ContainerStatus) -> Option<String> {
    c.state.as_ref()?.terminated.as_ref()?.reason.clone()
}

fn condition(status: &PodStatus, kind: &str) -> (String, Option<String>, Option<String>) {
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .expect(kind);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn a_pod_starts_runs_and_reports_running() {
    let h = harness();
    let mut p = pod(json!({"containers": [{"name": "c", "image": "busybox:1.36",
        "command": ["sleep", "3600"], "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}]}));
    let out = h.sync(&mut p).await;
    let s = &out.status;
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let c = cs(s, "c");
    assert!(c.ready && c.started == Some(true));
    assert_eq!(c.restart_count, 0);
    assert!(
        c.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert!(c.image_id.starts_with("sha256:"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.3"));
    assert_eq!(s.host_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    assert!(s.start_time.is_some());
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(condition(s, kind).0, "True", "{kind}");
    }
    let calls = h.rt.calls();
    assert_eq!(
        calls,
        [
            "run_pod_sandbox p",
            "pull_image busybox:1.36",
            "create_container c",
            "start_container c"
        ]
    );
    let id = h.rt.running("c").expect("running");
    let cfg = h.rt.container_config(&id).expect("config");
    assert_eq!(cfg.command, ["sleep", "3600"]);
    assert!(cfg.envs.iter().any(|kv| kv.key == "X" && kv.value == "v"));
    let events: Vec<String> = h
        .syncer
        .recorder
        .recorded()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(events, ["Pulling", "Pulled", "Created", "Started"]);

    // Nothing to do on the next sync: same status, no runtime writes.
    h.rt.clear_calls();
    let again = h.sync(&mut p).await;
    assert!(h.rt.calls().is_empty(), "{:?}", h.rt.calls());
    assert_eq!(
        serde_json::to_value(&again.status).ok(),
        serde_json::to_value(&out.status).ok()
    );
}

#[tokio::test]
async fn init_containers_run_in_order_before_app_containers() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({
        "initContainers": [{"name": "i1", "image": "busybox", "imagePullPolicy": "IfNotPresent"},
                           {"name": "i2", "image": "busybox", "imagePullPolicy": "IfNotPresent"}],
        "containers": [{"name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    let s = h.sync(&mut p).await.status;
    assert!(h.rt.running("i1").is_some() && h.rt.running("i2").is_none());
    assert_eq!(
        waiting_reason(cs(&s, "app")).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(
        waiting_reason(cs(&s, "i2")).as_deref(),
        Some("PodInitializing")
    );
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(
        condition(&s, "Initialized"),
        (
            "False".into(),
            Some("ContainersNotInitialized".into()),
            Some("containers with incomplete status: [i1 i2]".into())
        )
    );
    // Still running: nothing else starts.
    h.sync(&mut p).await;
    assert!(h.rt.running("i2").is_none());

    h.rt.exit(&h.rt.running("i1").expect("i1"), 0);
    let s = h.sync(&mut p).await.status;
    assert!(h.rt.running("i2").is_some() && h.rt.running("app").is_none());
    assert_eq!(
        terminated_reason(cs(&s, "i1")).as_deref(),
        Some("Completed")
    );
    assert!(cs(&s, "i1").ready, "a completed init container is ready");

    h.rt.exit(&h.rt.running("i2").expect("i2"), 0);
    let s = h.sync(&mut p).await.status;
    assert!(h.rt.running("app").is_some());
    assert_eq!(condition(&s, "Initialized").0, "True");
    assert_eq!(s.phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn a_failed_init_container_fails_a_never_pod() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({"restartPolicy": "Never",
        "initContainers": [{"name": "i1", "image": "busybox", "imagePullPolicy": "IfNotPresent"}],
        "containers": [{"name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    h.sync(&mut p).await;
    h.rt.exit(&h.rt.running("i1").expect("i1"), 3);
    let s = h.sync(&mut p).await.status;
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(terminated_reason(cs(&s, "i1")).as_deref(), Some("Error"));
    assert!(h.rt.containers_named("app").is_empty());
}

#[tokio::test]
async fn crashing_container_backs_off_10_then_20_seconds() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}),
    );
    h.sync(&mut p).await;
    // First crash: restarted at once.
    h.rt.exit(&h.rt.running("c").expect("c"), 1);
    let s = h.sync(&mut p).await.status;
    assert_eq!(cs(&s, "c").restart_count, 1);
    assert!(h.rt.running("c").is_some());
    // Second crash: CrashLoopBackOff for 10 s.
    h.clock.advance(Duration::from_secs(1));
    h.rt.exit(&h.rt.running("c").expect("c"), 1);
    let out = h.sync(&mut p).await;
    let c = cs(&out.status, "c");
    assert_eq!(waiting_reason(c).as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.clone())
            .as_deref(),
        Some("back-off 10s restarting failed container=c pod=p_ns(uid-1)")
    );
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(c.restart_count, 1);
    assert_eq!(out.status.phase.as_deref(), Some("Running"));
    assert_eq!(out.retry_after, Some(Duration::from_secs(10)));
    assert!(h.rt.running("c").is_none());
    assert!(
        h.syncer.recorder.recorded().iter().any(|e| e.1 == "BackOff"
            && e.2 == "Back-off restarting failed container c in pod p_ns(uid-1)")
    );
    // 9 s later still backing off; at 10 s it restarts.
    h.clock.advance(Duration::from_secs(9));
    h.sync(&mut p).await;
    assert!(h.rt.running("c").is_none());
    h.clock.advance(Duration::from_secs(1));
    let s = h.sync(&mut p).await.status;
    assert!(h.rt.running("c").is_some());
    assert_eq!(cs(&s, "c").restart_count, 2);
    // Next crash: 20 s.
    h.clock.advance(Duration::from_secs(1));
    h.rt.exit(&h.rt.running("c").expect("c"), 1);
    let out = h.sync(&mut p).await;
    assert_eq!(out.retry_after, Some(Duration::from_secs(20)));
    // Only the newest dead container is kept beside the running one.
    h.clock.advance(Duration::from_secs(20));
    h.sync(&mut p).await;
    assert!(
        h.rt.containers_named("c").len() <= 2,
        "{:?}",
        h.rt.containers_named("c")
    );
}

/// Regression: every sync read the pod's sandboxes and containers a second time at its
/// end even when it had changed nothing, and a finished pod's every resync did too.
#[tokio::test]
async fn syncs_that_change_nothing_read_the_runtime_once() {
    let h = harness();
    let mut p = pod(json!({"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox:1.36"}]}));
    h.sync(&mut p).await;
    let lists = h.rt.list_calls();
    h.sync(&mut p).await;
    assert_eq!(
        h.rt.list_calls() - lists,
        2,
        "one list of sandboxes, one of containers"
    );

    h.rt.exit(&h.rt.running("c").expect("c"), 0);
    let done = h.sync(&mut p).await.status;
    assert_eq!(done.phase.as_deref(), Some("Succeeded"));
    h.rt.clear_calls();
    let lists = h.rt.list_calls();
    let again = h.sync(&mut p).await.status;
    assert_eq!(h.rt.list_calls() - lists, 2);
    assert!(h.rt.calls().is_empty(), "{:?}", h.rt.calls());
    assert_eq!(
        serde_json::to_value(&again).ok(),
        serde_json::to_value(&done).ok()
    );
}

#[tokio::test]
async fn never_and_on_failure_pods_finish() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    h.sync(&mut p).await;
    h.rt.exit(&h.rt.running("c").expect("c"), 0);
    let s = h.sync(&mut p).await.status;
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(terminated_reason(cs(&s, "c")).as_deref(), Some("Completed"));
    assert_eq!(
        condition(&s, "Ready"),
        ("False".into(), Some("PodCompleted".into()), None)
    );
    assert!(
        h.rt.calls()
            .iter()
            .any(|c| c.starts_with("stop_pod_sandbox")),
        "sandbox stopped"
    );

    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({"restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    h.sync(&mut p).await;
    h.rt.exit(&h.rt.running("c").expect("c"), 2);
    h.sync(&mut p).await;
    assert!(
        h.rt.running("c").is_some(),
        "OnFailure restarts a failed container"
    );
    h.rt.exit(&h.rt.running("c").expect("c"), 0);
    let s = h.sync(&mut p).await.status;
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    assert_eq!(cs(&s, "c").restart_count, 1);

    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    h.sync(&mut p).await;
    h.rt.oom_kill(&h.rt.running("c").expect("c"));
    let s = h.sync(&mut p).await.status;
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    let t = cs(&s, "c")
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!((t.reason.as_deref(), t.exit_code), (Some("OOMKilled"), 137));
}

#[tokio::test]
async fn deleting_a_pod_stops_and_removes_everything() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(json!({"terminationGracePeriodSeconds": 7,
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}));
    h.sync(&mut p).await;
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        h.clock.now(),
    ));
    p.metadata.deletion_grace_period_seconds = Some(7);
    let out = h.sync(&mut p).await;
    assert!(out.removed);
    assert!(
        h.rt.calls().contains(&"stop_container c 7".to_string()),
        "{:?}",
        h.rt.calls()
    );
    assert_eq!((h.rt.sandbox_count(), h.rt.container_count()), (0, 0));
    assert_eq!(out.status.phase.as_deref(), Some("Failed"));
    assert_eq!(
        terminated_reason(cs(&out.status, "c")).as_deref(),
        Some("Error")
    );
    assert!(
        h.syncer
            .recorder
            .recorded()
            .iter()
            .any(|e| e.1 == "Killing" && e.2 == "Stopping container c")
    );
}

#[tokio::test]
async fn a_restarted_kubelet_adopts_running_containers() {
    let h = harness();
    h.rt.add_image("busybox:latest");
    let mut p = pod(
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}),
    );
    h.sync(&mut p).await;
    let id = h.rt.running("c").expect("running");
    // A new kubelet: fresh back-off and caches, same runtime.
    let restarted = syncer_for(&h.rt, &h.clock);
    h.rt.clear_calls();
    let out = restarted.sync(&p, &h.node).await.expect("sync");
    assert!(
        h.rt.calls().is_empty(),
        "nothing recreated: {:?}",
        h.rt.calls()
    );
    let c = cs(&out.status, "c");
    assert_eq!(
        c.container_id.as_deref(),
        Some(format!("containerd://{id}").as_str())
    );
    assert_eq!(c.restart_count, 0);
    assert_eq!(out.status.phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn image_problems_have_kubernetes_reasons() {
    let h = harness();
    h.rt.fail_pull(
        "busybox:nope",
        "failed to resolve reference \"docker.io/library/busybox:nope\": not found",
    );
    let mut p = pod(json!({"containers": [
        {"name": "pull", "image": "busybox:nope"},
        {"name": "never", "image": "absent:1", "imagePullPolicy": "Never"},
        {"name": "bad", "image": "Bad Name"},
        {"name": "cfg", "image": "busybox:1", "env": [{"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}]}]}));
    let s = h.sync(&mut p).await.status;
    assert_eq!(
        waiting_reason(cs(&s, "pull")).as_deref(),
        Some("ErrImagePull")
    );
    assert_eq!(
        waiting_reason(cs(&s, "never")).as_deref(),
        Some("ErrImageNeverPull")
    );
    assert_eq!(
        waiting_reason(cs(&s, "bad")).as_deref(),
        Some("InvalidImageName")
    );
    let cfg = cs(&s, "cfg");
    assert_eq!(
        waiting_reason(cfg).as_deref(),
        Some("CreateContainerConfigError")
    );
    assert_eq!(
        cfg.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.clone())
            .as_deref(),
        Some("configmap \"missing\" not found")
    );
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    // Within the pull back-off: ImagePullBackOff, no new pull.
    h.rt.clear_calls();
    let s = h.sync(&mut p).await.status;
    let pull = cs(&s, "pull");
    assert_eq!(waiting_reason(pull).as_deref(), Some("ImagePullBackOff"));
    assert!(
        pull.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.message.clone())
            .is_some_and(|m| m.starts_with(
                "Back-off pulling image \"busybox:nope\": ErrImagePull: failed to resolve"
            ))
    );
    assert!(!h.rt.calls().iter().any(|c| c == "pull_image busybox:nope"));
    h.clock.advance(Duration::from_secs(11));
    h.sync(&mut p).await;
    assert!(
        h.rt.calls().iter().any(|c| c == "pull_image busybox:nope"),
        "pulled again after 10 s"
    );
}

#[tokio::test]
async fn pods_wait_for_the_network_but_host_network_pods_do_not() {
    let mut h = harness();
    h.node.network_error = Some("container runtime network not ready: NetworkReady=false".into());
    h.rt.add_image("busybox:latest");
    let mut p = pod(
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}),
    );
    let out = h.sync(&mut p).await;
    assert_eq!(h.rt.sandbox_count(), 0);
    assert_eq!(
        waiting_reason(cs(&out.status, "c")).as_deref(),
        Some("ContainerCreating")
    );
    assert!(out.retry_after.is_some());
    let mut hn = pod(
        json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent"}]}),
    );
    hn.metadata.uid = Some("uid-2".into());
    let s = h.sync(&mut hn).await.status;
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(
        s.pod_ip.as_deref(),
        Some("192.0.2.10"),
        "host-network pods have the node's IP"
    );
}
