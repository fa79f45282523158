//! The kubectl compatibility matrix: one scripted session of everyday kubectl — apply and
//! re-apply of a Deployment, Service and ConfigMap, `get` in every output form, describe,
//! label, annotate, patch of each type, edit, scale, server-side dry runs, diff, create and
//! replace from a `List`, watches, deletes with every cascade — run with `/usr/bin/kubectl`
//! and with every `kubectl.1.NN` on the machine, asserting both what kubectl prints and
//! what the apiserver stored.
//!
//! One cluster serves every version (a namespace each, at most [`PARALLEL`] sessions at a
//! time), with kadm-controller-manager running so that the garbage collector carries out
//! the background, foreground and orphan cascades. Server-side apply steps run only when
//! the apiserver supports it (probed once with a dry-run apply patch).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use http::Method;
use kadm_e2e::process::Process;
use kadm_e2e::{
    Background, RawClient, TestCluster, WAIT, installed_kubectl_versions, kubectl_path,
};
use serde_json::{Value, json};

/// Sessions running at once (2 cores: kubectl start-up is the cost).
const PARALLEL: usize = 3;
/// How long one kubectl run may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One kubectl binary driving one namespace.
struct Kubectl<'a> {
    cluster: &'a TestCluster,
    raw: RawClient,
    /// `None`: the `/usr/bin/kubectl` dispatcher.
    version: Option<String>,
    label: String,
    ns: String,
    /// HOME (discovery cache) and manifests of this session.
    dir: PathBuf,
    /// Unique per session: the Service's nodePort.
    node_port: u16,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(kubectl_path(self.version.as_deref()));
        cmd.arg("--kubeconfig")
            .arg(self.cluster.kubeconfig_path())
            .args(args)
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .env_remove("KUBE_EDITOR")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        cmd
    }

    async fn output(
        &self,
        mut cmd: tokio::process::Command,
        args: &[&str],
    ) -> anyhow::Result<Output> {
        tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("kubectl {} did not finish in time", args.join(" ")))?
            .with_context(|| format!("run kubectl {}", args.join(" ")))
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.output(self.command(args), args).await
    }

    /// Runs kubectl and insists it succeeded; returns stdout.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args).await?;
        ensure!(
            out.status.success(),
            "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        Ok(text(&out.stdout))
    }

    /// Runs kubectl in this session's namespace and insists it succeeded.
    async fn ns_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.ok(&all).await
    }

    /// Runs kubectl in this session's namespace and insists it failed; returns stderr.
    async fn ns_fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        let out = self.run(&all).await?;
        ensure!(
            !out.status.success(),
            "kubectl {} succeeded but should not have:\nstdout: {}",
            all.join(" "),
            text(&out.stdout)
        );
        Ok(text(&out.stderr))
    }

    fn background(&self, args: &[&str]) -> anyhow::Result<Background> {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        Background::spawn(self.command(&all))
    }

    /// Writes a manifest into the session directory; returns its path.
    fn file(&self, name: &str, content: &str) -> anyhow::Result<String> {
        let p = self.dir.join(name);
        std::fs::write(&p, content)?;
        Ok(p.display().to_string())
    }

    /// The stored object at `path` below this namespace (`apps/v1/deployments/web`), or
    /// `None` when it does not exist.
    async fn stored(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let (prefix, rest) = match path.strip_prefix("v1/") {
            Some(rest) => ("/api/v1".to_string(), rest),
            None => match path.split_once("/v1/") {
                Some((group, rest)) => (format!("/apis/{group}/v1"), rest),
                None => bail!("bad path {path}"),
            },
        };
        let url = format!("{prefix}/namespaces/{}/{rest}", self.ns);
        let r = self.raw.get(&url).await?;
        match r.status {
            200 => Ok(Some(r.json()?)),
            404 => Ok(None),
            s => bail!("GET {url}: {s} {}", r.text()),
        }
    }

    async fn must(&self, path: &str) -> anyhow::Result<Value> {
        self.stored(path)
            .await?
            .with_context(|| format!("{path} is not stored in {}", self.ns))
    }

    /// Waits until `path` no longer exists.
    async fn wait_gone(&self, path: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.stored(path).await?.is_some() {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{path} still exists after {}s",
                WAIT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }
}

/// The whitespace-separated cells of the table line whose first cell is `first`.
fn row<'a>(out: &'a str, first: &str) -> anyhow::Result<Vec<&'a str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .with_context(|| format!("no row {first:?} in\n{out}"))
}

fn header(out: &str) -> Vec<&str> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

fn has_line(out: &str, line: &str) -> anyhow::Result<()> {
    ensure!(
        out.lines().any(|l| l.trim() == line),
        "expected the line {line:?} in\n{out}"
    );
    Ok(())
}

fn contains(out: &str, what: &str) -> anyhow::Result<()> {
    ensure!(out.contains(what), "expected {what:?} in\n{out}");
    Ok(())
}

/// The describe line starting with `field:` (e.g. `Replicas:`), trimmed to its value.
fn described<'a>(out: &'a str, field: &str) -> anyhow::Result<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(field).map(str::trim))
        .with_context(|| format!("no {field:?} line in\n{out}"))
}

fn app_manifest(ns: &str, image: &str, data: &str, service_labels: &str, node_port: u16) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels: {service_labels}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 80
    nodePort: {node_port}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: {ns}
  labels: {{app: web}}
data:
{data}
"#
    )
}

/// Starts kadm-controller-manager (the binary next to kadm-apiserver) against `cluster`
/// and waits for `/healthz`.
async fn start_controller_manager(cluster: &TestCluster) -> anyhow::Result<Process> {
    let bin = kadm_e2e::cluster::apiserver_binary()?.with_file_name("kadm-controller-manager");
    ensure!(
        bin.is_file(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)",
        bin.display()
    );
    let port = kadm_e2e::ports::free_port()?;
    let kubeconfig = cluster
        .dir()
        .join(kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF);
    let args: Vec<OsString> = vec![
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--secure-port".into(),
        port.to_string().into(),
        "--leader-elect-identity".into(),
        format!("kubectl-matrix_{}", std::process::id()).into(),
        // Only what the cascades need: workload controllers would turn the session's
        // Deployment and ReplicaSet into pods and events that the expected output lacks.
        "--controllers".into(),
        "namespace,garbagecollector".into(),
    ];
    let log = cluster.dir().join("controller-manager.log");
    let mut process = Process::spawn(
        "kadm-controller-manager",
        &bin,
        &args,
        &[("KADM_LOG", "info"), ("KADM_LOG_FORMAT", "text")],
        &log,
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.exited() {
            bail!(
                "kadm-controller-manager exited ({status}):\n{}",
                kadm_e2e::process::tail(&log, 40)
            );
        }
        if healthz(port).await == Some(200) {
            return Ok(process);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "kadm-controller-manager not healthy within 30s:\n{}",
            kadm_e2e::process::tail(&log, 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn healthz(port: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Whether the apiserver accepts server-side apply: one dry-run apply patch.
async fn server_side_apply_supported(raw: &RawClient) -> anyhow::Result<bool> {
    let body =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kadm-ssa-probe\ndata:\n  k: v\n";
    let r = raw
        .request(
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/kadm-ssa-probe?fieldManager=probe&dryRun=All",
            Some("application/apply-patch+yaml"),
            body.as_bytes().to_vec(),
        )
        .await?;
    match r.status {
        200 | 201 => Ok(true),
        415 => Ok(false),
        s => bail!("server-side apply probe: unexpected {s}: {}", r.text()),
    }
}

#[tokio::test]
async fn everyday_kubectl_session_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let controller_manager = start_controller_manager(&cluster).await?;
    let ssa = server_side_apply_supported(&cluster.raw()?).await?;
    if !ssa {
        eprintln!(
            "kubectl-matrix: the apiserver does not support server-side apply yet; skipping its steps"
        );
    }

    let mut versions: Vec<Option<String>> =
        installed_kubectl_versions().into_iter().map(Some).collect();
    ensure!(
        versions.iter().any(|v| v.as_deref() == Some("1.33")),
        "kubectl.1.33 is not installed: {versions:?}"
    );
    if Path::new(kadm_e2e::kubectl::KUBECTL_DISPATCHER).exists() {
        versions.push(None);
    }

    let mut sessions = Vec::new();
    for (i, version) in versions.into_iter().enumerate() {
        let label = version.clone().unwrap_or_else(|| "dispatcher".into());
        let dir = cluster.dir().join(format!("kubectl-{label}"));
        std::fs::create_dir_all(&dir)?;
        sessions.push(Kubectl {
            cluster: &cluster,
            raw: cluster.raw()?,
            ns: format!("m-{}", label.replace('.', "-")),
            version,
            label,
            dir,
            node_port: 30100 + u16::try_from(i)?,
        });
    }

    let started = std::time::Instant::now();
    let results: Vec<(String, anyhow::Result<()>, Duration)> = futures::stream::iter(&sessions)
        .map(|k| async move {
            let t = std::time::Instant::now();
            let r = session(k, ssa).await;
            (k.label.clone(), r, t.elapsed())
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;

    let mut failed = Vec::new();
    for (label, result, took) in &results {
        match result {
            Ok(()) => eprintln!(
                "kubectl {label}: session passed in {:.1}s",
                took.as_secs_f64()
            ),
            Err(e) => failed.push(format!("kubectl {label}: {e:#}")),
        }
    }
    eprintln!(
        "kubectl-matrix: {} sessions in {:.1}s (server-side apply {})",
        results.len(),
        started.elapsed().as_secs_f64(),
        if ssa {
            "checked"
        } else {
            "skipped: not supported"
        }
    );
    if !failed.is_empty() {
        eprintln!(
            "---- kadm-controller-manager log, last 40 lines ----\n{}",
            kadm_e2e::process::tail(controller_manager.log_path(), 40)
        );
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n\n"));
    Ok(())
}

/// The scripted session of one kubectl, every step named in its error.
async fn session(k: &Kubectl<'_>, ssa: bool) -> anyhow::Result<()> {
    let out = k
        .ok(&["create", "namespace", &k.ns])
        .await
        .context("create namespace")?;
    has_line(&out, &format!("namespace/{} created", k.ns))?;

    apply(k).await.context("apply and re-apply")?;
    get_forms(k).await.context("get in every output form")?;
    describe(k).await.context("describe")?;
    label_annotate_patch_edit(k)
        .await
        .context("label, annotate, patch, edit")?;
    scale_and_dry_run(k)
        .await
        .context("scale and server-side dry run")?;
    diff_create_replace(k)
        .await
        .context("diff, create and replace")?;
    watch(k).await.context("watch")?;
    delete(k).await.context("delete")?;
    if ssa {
        server_side_apply(k).await.context("server-side apply")?;
    }
    Ok(())
}

async fn apply(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let v1 = k.file(
        "app-v1.yaml",
        &app_manifest(&k.ns, "nginx:1.25", "  a: \"1\"", "{app: web}", k.node_port),
    )?;
    let out = k.ok(&["apply", "-f", &v1]).await?;
    has_line(&out, "deployment.apps/web created")?;
    has_line(&out, "service/web created")?;
    has_line(&out, "configmap/web-config created")?;

    let v2 = k.file(
        "app-v2.yaml",
        &app_manifest(
            &k.ns,
            "nginx:1.26",
            "  a: \"2\"\n  b: \"3\"",
            "{app: web, tier: fe}",
            k.node_port,
        ),
    )?;
    let out = k.ok(&["apply", "-f", &v2]).await?;
    has_line(&out, "deployment.apps/web configured")?;
    has_line(&out, "service/web configured")?;
    has_line(&out, "configmap/web-config configured")?;
    let deploy = k.must("apps/v1/deployments/web").await?;
    ensure!(
        deploy
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            == Some("nginx:1.26"),
        "re-applied image not stored: {deploy}"
    );
    ensure!(
        deploy
            .pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
            .and_then(Value::as_str)
            .is_some_and(|a| a.contains("nginx:1.26")),
        "last-applied-configuration not updated: {deploy}"
    );
    let cm = k.must("v1/configmaps/web-config").await?;
    ensure!(cm["data"] == json!({"a": "2", "b": "3"}), "{cm}");
    let svc = k.must("v1/services/web").await?;
    ensure!(svc["metadata"]["labels"]["tier"] == "fe", "{svc}");

    let out = k.ok(&["apply", "-f", &v2]).await?;
    has_line(&out, "deployment.apps/web unchanged")?;
    has_line(&out, "service/web unchanged")?;
    has_line(&out, "configmap/web-config unchanged")?;
    Ok(())
}

async fn get_forms(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let np = k.node_port;
    let out = k.ns_ok(&["get", "deploy,svc,cm"]).await?;
    let d = row(&out, "deployment.apps/web")?;
    ensure!(d[1..4] == ["0/2", "0", "0"], "deployment row {d:?}");
    let s = row(&out, "service/web")?;
    let ports = format!("80:{np}/TCP");
    // The apiserver allocates a cluster IP from TestCluster's 10.96.0.0/12.
    let ip_in_range = s[2].parse::<std::net::Ipv4Addr>().is_ok_and(|ip| {
        (u32::from(ip) >> 20) == (u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20)
    });
    ensure!(
        s[1] == "NodePort" && ip_in_range && s[3..5] == ["<none>", ports.as_str()],
        "service row {s:?}"
    );
    let c = row(&out, "configmap/web-config")?;
    ensure!(c[1] == "2", "configmap row {c:?}");
    contains(
        &out,
        "NAME                  READY   UP-TO-DATE   AVAILABLE   AGE",
    )?;

    let out = k.ns_ok(&["get", "deploy", "web", "-o", "wide"]).await?;
    ensure!(
        header(&out)
            == [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
        "{out}"
    );
    let d = row(&out, "web")?;
    ensure!(
        d[1..4] == ["0/2", "0", "0"] && d[5..] == ["nginx", "nginx:1.26", "app=web"],
        "{d:?}"
    );
    let out = k.ns_ok(&["get", "svc", "web", "-o", "wide"]).await?;
    ensure!(header(&out).last() == Some(&"SELECTOR"), "{out}");
    ensure!(row(&out, "web")?.last() == Some(&"app=web"), "{out}");

    let out = k.ns_ok(&["get", "deploy,svc,cm", "-o", "name"]).await?;
    ensure!(
        out.lines().collect::<Vec<_>>()
            == ["deployment.apps/web", "service/web", "configmap/web-config"],
        "{out}"
    );
    let out = k.ns_ok(&["get", "deploy", "web", "-o", "json"]).await?;
    let v: Value = serde_json::from_str(&out).context("-o json")?;
    ensure!(
        v["kind"] == "Deployment" && v["spec"]["replicas"] == 2,
        "{v}"
    );
    let out = k.ns_ok(&["get", "cm", "web-config", "-o", "yaml"]).await?;
    contains(&out, "kind: ConfigMap")?;
    has_line(&out, "a: \"2\"")?;
    let out = k
        .ns_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await?;
    ensure!(out == "nginx:1.26", "{out:?}");
    let out = k
        .ns_ok(&[
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[*].image,REPLICAS:.spec.replicas",
        ])
        .await?;
    ensure!(header(&out) == ["NAME", "IMAGE", "REPLICAS"], "{out}");
    ensure!(row(&out, "web")? == ["web", "nginx:1.26", "2"], "{out}");

    // Created in reverse order: the listing is sorted by name only because kubectl sorts.
    let sorted = k.file(
        "sorted.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sort-zeta\n  labels: {group: sorted}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sort-alpha\n  labels: {group: sorted}\n",
    )?;
    let out = k.ns_ok(&["create", "-f", &sorted]).await?;
    has_line(&out, "configmap/sort-zeta created")?;
    has_line(&out, "configmap/sort-alpha created")?;
    let out = k
        .ns_ok(&[
            "get",
            "cm",
            "-l",
            "group=sorted",
            "--sort-by=.metadata.name",
        ])
        .await?;
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ensure!(names == ["sort-alpha", "sort-zeta"], "{out}");

    let out = k.ns_ok(&["get", "cm", "web-config", "-L", "app"]).await?;
    ensure!(header(&out) == ["NAME", "DATA", "AGE", "APP"], "{out}");
    ensure!(row(&out, "web-config")?.last() == Some(&"web"), "{out}");
    let out = k
        .ns_ok(&["get", "cm", "web-config", "--show-labels"])
        .await?;
    ensure!(header(&out) == ["NAME", "DATA", "AGE", "LABELS"], "{out}");
    ensure!(row(&out, "web-config")?.last() == Some(&"app=web"), "{out}");

    events(k).await.context("events")?;

    let out = k
        .ok(&["get", "--raw", &format!("/api/v1/namespaces/{}", k.ns)])
        .await?;
    let v: Value = serde_json::from_str(&out).context("--raw")?;
    ensure!(
        v["metadata"]["name"] == k.ns.as_str() && v["status"]["phase"] == "Active",
        "{v}"
    );
    Ok(())
}

/// A pod, a ReplicaSet, a node and events about the Deployment and the pod, then
/// `get events --sort-by=.lastTimestamp`.
async fn events(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let objects = k.file(
        "objects.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web-pod, labels: {{app: web}}}}
spec:
  containers: [{{name: nginx, image: "nginx:1.26"}}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web-rs, labels: {{app: rs}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: rs}}}}
  template:
    metadata: {{labels: {{app: rs}}}}
    spec: {{containers: [{{name: nginx, image: "nginx:1.26"}}]}}
---
apiVersion: v1
kind: Node
metadata:
  name: node-{ns}
  labels: {{node-role.kubernetes.io/control-plane: ""}}
"#,
            ns = k.ns
        ),
    )?;
    let out = k.ns_ok(&["create", "-f", &objects]).await?;
    has_line(&out, "pod/web-pod created")?;
    has_line(&out, "replicaset.apps/web-rs created")?;

    let deploy_uid = k.must("apps/v1/deployments/web").await?["metadata"]["uid"].clone();
    let pod_uid = k.must("v1/pods/web-pod").await?["metadata"]["uid"].clone();
    let now = chrono::Utc::now();
    let at = |secs: i64| {
        (now - chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let event = |name: &str,
                 kind: &str,
                 api: &str,
                 obj: &str,
                 uid: &Value,
                 reason: &str,
                 msg: &str,
                 secs: i64| {
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": k.ns},
            "involvedObject": {"kind": kind, "apiVersion": api, "name": obj, "namespace": k.ns, "uid": uid},
            "reason": reason, "message": msg, "type": "Normal", "count": 1,
            "source": {"component": "kubectl-matrix"},
            "firstTimestamp": at(secs), "lastTimestamp": at(secs)})
    };
    // Created newest first: the sorted listing must turn the order around.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        event("web.newest", "Deployment", "apps/v1", "web", &deploy_uid, "ScalingReplicaSet", "Scaled up replica set web-7d4 to 2", 10),
        event("web-pod.middle", "Pod", "v1", "web-pod", &pod_uid, "Scheduled", "Successfully assigned the pod", 100),
        event("web.oldest", "Deployment", "apps/v1", "web", &deploy_uid, "Created", "Created the deployment", 1000),
    ]});
    let file = k.file("events.json", &serde_json::to_string_pretty(&list)?)?;
    k.ns_ok(&["create", "-f", &file]).await?;
    let out = k
        .ns_ok(&["get", "events", "--sort-by=.lastTimestamp"])
        .await?;
    ensure!(
        header(&out) == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    let reasons: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    ensure!(
        reasons == ["Created", "Scheduled", "ScalingReplicaSet"],
        "events not sorted by lastTimestamp:\n{out}"
    );
    contains(&out, "deployment/web")?;
    contains(&out, "pod/web-pod")?;
    Ok(())
}

async fn describe(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let out = k.ns_ok(&["describe", "deployment", "web"]).await?;
    ensure!(described(&out, "Name:")? == "web", "{out}");
    ensure!(described(&out, "Namespace:")? == k.ns, "{out}");
    contains(described(&out, "Replicas:")?, "2 desired")?;
    contains(&out, "nginx:1.26")?;
    contains(&out, "ScalingReplicaSet")?;
    contains(&out, "Scaled up replica set web-7d4 to 2")?;

    let out = k.ns_ok(&["describe", "pod", "web-pod"]).await?;
    ensure!(described(&out, "Status:")? == "Pending", "{out}");
    contains(&out, "Successfully assigned the pod")?;
    // The deployment's events are not the pod's.
    ensure!(!out.contains("ScalingReplicaSet"), "{out}");

    let out = k.ns_ok(&["describe", "replicaset", "web-rs"]).await?;
    ensure!(
        described(&out, "Replicas:")? == "0 current / 1 desired",
        "{out}"
    );

    let out = k.ns_ok(&["describe", "service", "web"]).await?;
    ensure!(described(&out, "Type:")? == "NodePort", "{out}");
    contains(
        described(&out, "NodePort:")?,
        &format!("{}/TCP", k.node_port),
    )?;

    let out = k.ns_ok(&["describe", "configmap", "web-config"]).await?;
    ensure!(described(&out, "Name:")? == "web-config", "{out}");

    let out = k.ok(&["describe", "namespace", &k.ns]).await?;
    ensure!(described(&out, "Status:")? == "Active", "{out}");

    let out = k
        .ok(&["describe", "node", &format!("node-{}", k.ns)])
        .await?;
    ensure!(described(&out, "Roles:")? == "control-plane", "{out}");
    let out = k.ok(&["get", "node", &format!("node-{}", k.ns)]).await?;
    let n = row(&out, &format!("node-{}", k.ns))?;
    ensure!(n[1..3] == ["Unknown", "control-plane"], "{out}");
    Ok(())
}

async fn label_annotate_patch_edit(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let out = k.ns_ok(&["label", "deploy", "web", "tier=backend"]).await?;
    has_line(&out, "deployment.apps/web labeled")?;
    k.ns_fails(&["label", "deploy", "web", "tier=frontend"])
        .await
        .context("relabel without --overwrite")?;
    k.ns_ok(&["label", "deploy", "web", "tier=frontend", "--overwrite"])
        .await?;
    let out = k
        .ns_ok(&["annotate", "deploy", "web", "note=hello"])
        .await?;
    // kubectl 1.27 names the operation "annotate" in this message (a client-side string).
    let annotated = if k.version.as_deref() == Some("1.27") {
        "deployment.apps/web annotate"
    } else {
        "deployment.apps/web annotated"
    };
    has_line(&out, annotated)?;
    let d = k.must("apps/v1/deployments/web").await?;
    ensure!(
        d["metadata"]["labels"] == json!({"app": "web", "tier": "frontend"})
            && d["metadata"]["annotations"]["note"] == "hello",
        "{}",
        d["metadata"]
    );
    let out = k.ns_ok(&["label", "deploy", "web", "tier-"]).await?;
    has_line(&out, "deployment.apps/web unlabeled")?;
    let d = k.must("apps/v1/deployments/web").await?;
    ensure!(
        d["metadata"]["labels"] == json!({"app": "web"}),
        "{}",
        d["metadata"]
    );

    let out = k
        .ns_ok(&[
            "patch",
            "cm",
            "web-config",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"c":"4"}}"#,
        ])
        .await?;
    has_line(&out, "configmap/web-config patched")?;
    let out = k
        .ns_ok(&[
            "patch",
            "cm",
            "web-config",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/data/a","value":"json"},{"op":"remove","path":"/data/b"}]"#,
        ])
        .await?;
    has_line(&out, "configmap/web-config patched")?;
    let cm = k.must("v1/configmaps/web-config").await?;
    ensure!(cm["data"] == json!({"a": "json", "c": "4"}), "{cm}");

    // Strategic merge: the container list merges by name (a JSON merge patch would
    // replace the list and drop the port).
    let out = k
        .ns_ok(&[
            "patch",
            "deploy",
            "web",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
        ])
        .await?;
    has_line(&out, "deployment.apps/web patched")?;
    let d = k.must("apps/v1/deployments/web").await?;
    let containers = &d["spec"]["template"]["spec"]["containers"];
    ensure!(
        containers.as_array().map(Vec::len) == Some(1)
            && containers[0]["image"] == "nginx:1.27"
            && containers[0]["ports"][0]["containerPort"] == 80,
        "{containers}"
    );
    // `patch` without --type is strategic too; an unchanged patch says so.
    let out = k
        .ns_ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":2}}"#])
        .await?;
    has_line(&out, "deployment.apps/web patched (no change)")?;

    let editor = k.file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^  a: .*/  a: edited/' \"$1\"\n",
    )?;
    make_executable(&editor)?;
    let args = ["-n", k.ns.as_str(), "edit", "cm", "web-config"];
    let mut cmd = k.command(&args);
    cmd.env("EDITOR", &editor).env("KUBE_EDITOR", &editor);
    let out = k.output(cmd, &args).await?;
    ensure!(
        out.status.success(),
        "kubectl edit failed: {}",
        text(&out.stderr)
    );
    has_line(&text(&out.stdout), "configmap/web-config edited")?;
    let cm = k.must("v1/configmaps/web-config").await?;
    ensure!(cm["data"] == json!({"a": "edited", "c": "4"}), "{cm}");
    Ok(())
}

fn make_executable(path: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

async fn scale_and_dry_run(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let replicas = |d: &Value| d["spec"]["replicas"].as_i64();
    let out = k.ns_ok(&["scale", "deploy", "web", "--replicas=3"]).await?;
    has_line(&out, "deployment.apps/web scaled")?;
    ensure!(replicas(&k.must("apps/v1/deployments/web").await?) == Some(3));
    let err = k
        .ns_fails(&[
            "scale",
            "deploy",
            "web",
            "--current-replicas=2",
            "--replicas=1",
        ])
        .await?;
    contains(&err, "Expected replicas to be 2, was 3")?;
    let out = k
        .ns_ok(&["get", "deploy", "web", "--subresource=scale"])
        .await?;
    ensure!(
        header(&out) == ["NAME", "DESIRED", "AVAILABLE", "AGE"],
        "{out}"
    );
    ensure!(row(&out, "web")?[1..3] == ["3", "0"], "{out}");

    // Server-side dry runs answer like the real thing and store nothing.
    let out = k
        .ns_ok(&["create", "configmap", "dry", "--dry-run=server"])
        .await?;
    has_line(&out, "configmap/dry created (server dry run)")?;
    ensure!(
        k.stored("v1/configmaps/dry").await?.is_none(),
        "dry-run create stored the object"
    );
    let out = k
        .ns_ok(&["scale", "deploy", "web", "--replicas=7", "--dry-run=server"])
        .await?;
    has_line(&out, "deployment.apps/web scaled (server dry run)")?;
    let out = k
        .ns_ok(&["label", "cm", "web-config", "dry=yes", "--dry-run=server"])
        .await?;
    has_line(&out, "configmap/web-config labeled (server dry run)")?;
    k.ns_ok(&[
        "patch",
        "cm",
        "web-config",
        "-p",
        r#"{"data":{"a":"dry"}}"#,
        "--dry-run=server",
    ])
    .await?;
    let out = k
        .ns_ok(&["delete", "cm", "web-config", "--dry-run=server"])
        .await?;
    has_line(&out, "configmap \"web-config\" deleted (server dry run)")?;
    let cm = k.must("v1/configmaps/web-config").await?;
    ensure!(
        cm["data"]["a"] == "edited" && cm["metadata"]["labels"].get("dry").is_none(),
        "a dry run changed the stored configmap: {cm}"
    );
    ensure!(replicas(&k.must("apps/v1/deployments/web").await?) == Some(3));
    Ok(())
}

async fn diff_create_replace(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let v3 = k.file(
        "app-v3.yaml",
        &app_manifest(
            &k.ns,
            "nginx:1.27",
            "  a: diffed\n  c: \"4\"",
            "{app: web, tier: fe}",
            k.node_port,
        ),
    )?;
    let out = k.ns_ok(&["get", "cm", "web-config", "-o", "name"]).await?;
    has_line(&out, "configmap/web-config")?;
    let diff = k.run(&["-n", &k.ns, "diff", "-f", &v3]).await?;
    ensure!(
        diff.status.code() == Some(1),
        "kubectl diff should exit 1 on differences ({}):\n{}\n{}",
        diff.status,
        text(&diff.stdout),
        text(&diff.stderr)
    );
    let out = text(&diff.stdout);
    contains(&out, "-  a: edited")?;
    contains(&out, "+  a: diffed")?;
    let cm = k.must("v1/configmaps/web-config").await?;
    ensure!(
        cm["data"]["a"] == "edited",
        "kubectl diff changed the object: {cm}"
    );

    let list = |value: &str| {
        format!(
            r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: list-a, labels: {{group: listed}}}}
  data: {{k: {value}}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: list-b, labels: {{group: listed}}}}
  data: {{k: {value}}}
"#
        )
    };
    let first = k.file("list-1.yaml", &list("one"))?;
    let out = k.ns_ok(&["create", "-f", &first]).await?;
    has_line(&out, "configmap/list-a created")?;
    has_line(&out, "configmap/list-b created")?;
    let second = k.file("list-2.yaml", &list("two"))?;
    let out = k.ns_ok(&["replace", "-f", &second]).await?;
    has_line(&out, "configmap/list-a replaced")?;
    has_line(&out, "configmap/list-b replaced")?;
    // Dry-run updates (PUT) and client-side applies (PATCH) store nothing either.
    let third = k.file("list-3.yaml", &list("three"))?;
    let out = k
        .ns_ok(&["replace", "-f", &third, "--dry-run=server"])
        .await?;
    has_line(&out, "configmap/list-a replaced (server dry run)")?;
    let out = k
        .ns_ok(&["apply", "-f", &third, "--dry-run=server"])
        .await?;
    has_line(&out, "configmap/list-a configured (server dry run)")?;
    for name in ["list-a", "list-b"] {
        let cm = k.must(&format!("v1/configmaps/{name}")).await?;
        ensure!(cm["data"]["k"] == "two", "{cm}");
    }
    Ok(())
}

async fn watch(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let mut w = k.background(&["get", "cm", "-w", "--request-timeout=60s"])?;
    // The initial list comes first; once it is printed the watch is under way.
    w.wait_for_line("the listed configmap", WAIT, |l| {
        l.starts_with("web-config")
    })
    .await?;
    k.ns_ok(&["create", "configmap", "watched", "--from-literal=x=y"])
        .await?;
    let line = w
        .wait_for_line("the configmap created while watching", WAIT, |l| {
            l.starts_with("watched")
        })
        .await?;
    ensure!(line.split_whitespace().nth(1) == Some("1"), "DATA: {line}");
    w.stop().await;

    // --watch-only prints changes only: nothing for configmaps left alone.
    let mut w = k.background(&["get", "cm", "--watch-only", "--request-timeout=60s"])?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = 0;
    loop {
        tick += 1;
        k.ns_ok(&[
            "label",
            "cm",
            "watched",
            &format!("tick={tick}"),
            "--overwrite",
        ])
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if w.lines().iter().any(|l| l.starts_with("watched")) {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "--watch-only printed no change within {}s: {:?} {}",
            WAIT.as_secs(),
            w.lines(),
            w.stderr()
        );
    }
    let lines = w.lines();
    ensure!(
        !lines
            .iter()
            .any(|l| l.starts_with("list-a") || l.starts_with("sort-")),
        "--watch-only printed the initial list: {lines:?}"
    );
    w.stop().await;
    Ok(())
}

async fn delete(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let out = k.ns_ok(&["delete", "cm", "-l", "group=listed"]).await?;
    has_line(&out, "configmap \"list-a\" deleted")?;
    has_line(&out, "configmap \"list-b\" deleted")?;
    for name in ["list-a", "list-b"] {
        ensure!(k.stored(&format!("v1/configmaps/{name}")).await?.is_none());
    }
    let out = k.ns_ok(&["delete", "cm", "watched", "--wait=true"]).await?;
    has_line(&out, "configmap \"watched\" deleted")?;
    ensure!(k.stored("v1/configmaps/watched").await?.is_none());

    // Owners and dependents for the three cascades; the garbage collector does the rest.
    let owners = k.file(
        "owners.yaml",
        &["d-bg", "d-fg", "d-or"]
            .iter()
            .map(|n| {
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {n}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {n}}}}}\n  template:\n    metadata: {{labels: {{app: {n}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n"),
    )?;
    k.ns_ok(&["create", "-f", &owners]).await?;
    let mut dependents = Vec::new();
    for owner in ["d-bg", "d-fg", "d-or"] {
        let uid = k.must(&format!("apps/v1/deployments/{owner}")).await?["metadata"]["uid"].clone();
        dependents.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{owner}-rs"), "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "Deployment", "name": owner, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": owner}},
                "template": {"metadata": {"labels": {"app": owner}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}));
    }
    let file = k.file(
        "dependents.json",
        &serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": dependents}))?,
    )?;
    k.ns_ok(&["create", "-f", &file]).await?;

    let out = k
        .ns_ok(&["delete", "deploy", "d-bg", "--cascade=background"])
        .await?;
    has_line(&out, "deployment.apps \"d-bg\" deleted")?;
    ensure!(k.stored("apps/v1/deployments/d-bg").await?.is_none());
    k.wait_gone("apps/v1/replicasets/d-bg-rs")
        .await
        .context("background cascade")?;

    // Foreground: kubectl waits for the owner, which goes only after its dependents.
    let out = k
        .ns_ok(&["delete", "deploy", "d-fg", "--cascade=foreground"])
        .await?;
    has_line(&out, "deployment.apps \"d-fg\" deleted")?;
    ensure!(k.stored("apps/v1/deployments/d-fg").await?.is_none());
    ensure!(
        k.stored("apps/v1/replicasets/d-fg-rs").await?.is_none(),
        "foreground cascade: the dependent outlived its owner"
    );

    let out = k
        .ns_ok(&["delete", "deploy", "d-or", "--cascade=orphan"])
        .await?;
    has_line(&out, "deployment.apps \"d-or\" deleted")?;
    ensure!(k.stored("apps/v1/deployments/d-or").await?.is_none());
    let rs = k
        .stored("apps/v1/replicasets/d-or-rs")
        .await?
        .context("orphan cascade deleted the dependent")?;
    ensure!(
        rs["metadata"]
            .get("ownerReferences")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty),
        "the orphan keeps its ownerReferences: {}",
        rs["metadata"]
    );

    let out = k.ns_ok(&["delete", "deploy", "web"]).await?;
    has_line(&out, "deployment.apps \"web\" deleted")?;
    ensure!(k.stored("apps/v1/deployments/web").await?.is_none());
    Ok(())
}

async fn server_side_apply(k: &Kubectl<'_>) -> anyhow::Result<()> {
    let manifest = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"{value}\"\n"
        )
    };
    let first = k.file("ssa-1.yaml", &manifest("1"))?;
    let out = k.ns_ok(&["apply", "--server-side", "-f", &first]).await?;
    has_line(&out, "configmap/ssa serverside-applied")?;
    let cm = k.must("v1/configmaps/ssa").await?;
    let managers: Vec<(&str, &str)> = cm["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    ensure!(managers.contains(&("kubectl", "Apply")), "{managers:?}");

    let second = k.file("ssa-2.yaml", &manifest("2"))?;
    let err = k
        .ns_fails(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &second,
        ])
        .await?;
    contains(&err, "conflict")?;
    ensure!(k.must("v1/configmaps/ssa").await?["data"]["x"] == "1");
    let out = k
        .ns_ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &second,
        ])
        .await?;
    has_line(&out, "configmap/ssa serverside-applied")?;
    ensure!(k.must("v1/configmaps/ssa").await?["data"]["x"] == "2");
    Ok(())
}
