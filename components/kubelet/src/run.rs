//! Wiring: flags → apiserver client, CRI client, node agent and pod manager; both run
//! until SIGTERM/SIGINT. Stopping the kubelet leaves every pod running (a new kubelet
//! adopts them).

use std::collections::BTreeMap;
use std::sync::Arc;

use kadm_base::process::{Shutdown, client_from_kubeconfig};

use crate::clock::SystemClock;
use crate::cni::CniSettings;
use crate::cri::remote::RemoteRuntime;
use crate::error::{Error, Result};
use crate::events::Recorder;
use crate::node::{self, NodeAgent, NodeConfig, host};
use crate::options::Options;
use crate::pod::PodManager;
use crate::pod::spec::{PodSettings, parse_resolv_conf};
use crate::pod::sync::{ObjectSource, Syncer};

/// Runs the kubelet until a signal asks it to stop.
pub async fn run(opts: Options) -> Result<()> {
    opts.validate()?;
    let name = opts.node_name()?;
    let hostname = host::hostname().unwrap_or_else(|_| name.clone());
    let client = client_from_kubeconfig(&opts.kubeconfig).await?;
    let shutdown = Shutdown::on_signals()?;
    let runtime = Arc::new(RemoteRuntime::new(&opts.container_runtime_endpoint)?);
    let node_ip = match opts.node_ip {
        Some(ip) => ip,
        None => host::default_node_ip()?,
    };
    std::fs::create_dir_all(&opts.root_dir).map_err(|source| Error::Io {
        action: "create",
        path: opts.root_dir.clone(),
        source,
    })?;
    let _health = if opts.healthz_port == 0 {
        None
    } else {
        Some(
            kadm_base::health::HealthServer::start(std::net::SocketAddr::new(
                opts.healthz_bind_address,
                opts.healthz_port,
            ))
            .await?,
        )
    };
    tracing::info!(version = kadm_base::VERSION, node = %name, %node_ip, endpoint = %opts.container_runtime_endpoint, "kadm-kubelet starting");

    let mut labels = BTreeMap::new();
    for l in &opts.node_labels {
        if let Some((k, v)) = l.split_once('=') {
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let taints = opts
        .register_with_taints
        .iter()
        .map(|t| node::parse_taint(t))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|reason| Error::InvalidFlag {
            flag: "--register-with-taints",
            reason,
        })?;
    let thresholds = node::pressure::parse_thresholds(&opts.eviction_hard).map_err(|reason| {
        Error::InvalidFlag {
            flag: "--eviction-hard",
            reason,
        }
    })?;
    let cni = opts.pod_cidr_from_node.then(|| CniSettings {
        conf_dir: opts.cni_conf_dir.clone(),
        bridge: opts.cni_bridge.clone(),
        ipam_data_dir: opts.cni_ipam_data_dir.clone(),
    });
    let (agent, view) = NodeAgent::new(
        client.clone(),
        Arc::clone(&runtime),
        SystemClock,
        NodeConfig {
            name: name.clone(),
            hostname: name.clone(),
            node_ip,
            labels,
            taints,
            max_pods: opts.max_pods,
            root_dir: opts.root_dir.clone(),
            image_fs_dir: opts.image_fs_dir.clone(),
            thresholds,
            pressure_transition: opts.eviction_pressure_transition_period,
            update_frequency: opts.node_status_update_frequency,
            report_frequency: opts.node_status_report_frequency,
            lease_duration_seconds: opts.node_lease_duration_seconds,
            cni,
        },
    );

    let resolv = std::fs::read_to_string(&opts.resolv_conf).unwrap_or_default();
    let settings = PodSettings {
        pod_log_dir: opts.pod_log_dir.clone(),
        cgroup_driver: opts.cgroup_driver,
        cgroup_root: opts.cgroup_root.clone(),
        cluster_dns: opts.cluster_dns.clone(),
        cluster_domain: opts.cluster_domain.clone(),
        host_dns: parse_resolv_conf(&resolv),
        node_hostname: hostname,
    };
    let mut syncer = Syncer::new(
        Arc::clone(&runtime),
        SystemClock,
        settings,
        Recorder::new(client.clone(), &name),
        ObjectSource::Api(client.clone()),
        (opts.crash_backoff_initial, opts.crash_backoff_max),
    );
    if let Ok(v) = crate::cri::Runtime::version(runtime.as_ref()).await {
        syncer.runtime_name = v.runtime_name;
    }
    let pods = PodManager::new(client, Arc::new(syncer), view, &name, opts.relist_period);
    let (a, p) = tokio::join!(agent.run(shutdown.clone()), pods.run(shutdown.clone()));
    a?;
    p?;
    tracing::info!("kadm-kubelet stopped; pods keep running");
    Ok(())
}
