//! Wiring: apiserver client, health endpoint, leader election, the enabled controllers,
//! and shutdown.
//!
//! ```text
//!  start ─► client ─► /healthz ─► acquire lease ─► run controllers ─┬─ SIGTERM: controllers
//!                                 (standby waits       + renew      │  finish their current
//!                                  here, healthy)        lease      │  syncs, lease released,
//!                                                                   │  exit 0
//!                                                                   │  (at most STOP_GRACE)
//!                                                                   └─ lease lost: exit 1 at
//!                                                                      once (the supervisor
//!                                                                      restarts us as standby)
//! ```

use std::net::SocketAddr;

use futures::FutureExt;
use futures::future::BoxFuture;
use kadm_base::leader::{self, LeaderElectionConfig};
use kadm_base::process::{Ended, client_from_kubeconfig, run_leader_elected};
pub use kadm_base::process::{STOP_GRACE, Shutdown};
use kube::Client;

use crate::controllers;
use crate::error::Result;
use crate::garbagecollector;
use crate::health::HealthServer;
use crate::namespace;
use crate::options::Options;

/// Runs the controller manager until SIGTERM/SIGINT (`Ok`) or until leadership is lost
/// (`Err`, so the process exits non-zero).
pub async fn run(opts: Options) -> Result<()> {
    let enabled = controllers::enabled(&opts.controllers)?;
    let client = client_from_kubeconfig(&opts.kubeconfig).await?;
    let shutdown = Shutdown::on_signals()?;
    let _health = HealthServer::start(SocketAddr::new(opts.bind_address, opts.secure_port)).await?;
    tracing::info!(version = kadm_base::VERSION, controllers = ?enabled, leader_elect = opts.leader_elect, "kadm-controller-manager starting");

    let election = if opts.leader_elect {
        Some(leader_config(&opts)?)
    } else {
        None
    };
    let work = async {
        let overdue = async {
            shutdown.wait().await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            () = run_controllers(client.clone(), &enabled, &opts, &shutdown) => {}
            () = overdue => {
                // kube-runtime waits for its cache before it can wind down; a stop right
                // after start would wait forever. Unfinished syncs are redone by the next
                // leader: every controller is idempotent.
                tracing::warn!(grace_s = STOP_GRACE.as_secs(), "controllers did not stop within the grace period; abandoning their work");
            }
        }
        Ok::<(), crate::Error>(())
    };
    if run_leader_elected(client.clone(), election, &shutdown, work).await? == Ended::Stopped {
        tracing::info!("kadm-controller-manager stopped");
    }
    Ok(())
}

fn leader_config(opts: &Options) -> Result<LeaderElectionConfig> {
    let identity = match &opts.leader_elect_identity {
        Some(id) => id.clone(),
        None => leader::default_identity()?,
    };
    Ok(LeaderElectionConfig {
        lease_namespace: opts.leader_elect_resource_namespace.clone(),
        lease_name: opts.leader_elect_resource_name.clone(),
        identity,
        lease_duration: opts.leader_elect_lease_duration,
        renew_deadline: opts.leader_elect_renew_deadline,
        retry_period: opts.leader_elect_retry_period,
    })
}

/// Runs every enabled controller until shutdown.
async fn run_controllers(client: Client, enabled: &[&str], opts: &Options, shutdown: &Shutdown) {
    let mut running: Vec<BoxFuture<'static, ()>> = Vec::new();
    for name in enabled {
        match *name {
            controllers::NAMESPACE => running.push(
                namespace::run(
                    client.clone(),
                    namespace::Config {
                        sync_period: opts.namespace_sync_period,
                        concurrency: opts.concurrent_namespace_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::GARBAGE_COLLECTOR if !opts.enable_garbage_collector => {
                tracing::info!(
                    controller = *name,
                    "garbage collector disabled by --enable-garbage-collector=false"
                );
            }
            controllers::GARBAGE_COLLECTOR => running.push(
                garbagecollector::run(
                    client.clone(),
                    garbagecollector::Config {
                        concurrency: opts.concurrent_gc_syncs,
                        ..garbagecollector::Config::default()
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::DEPLOYMENT => running.push(
                crate::deployment::run(
                    client.clone(),
                    crate::deployment::Config {
                        concurrency: opts.concurrent_deployment_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::REPLICASET => running.push(
                crate::replicaset::run(
                    client.clone(),
                    crate::replicaset::Config {
                        concurrency: opts.concurrent_replicaset_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::DAEMONSET => running.push(
                crate::daemonset::run(
                    client.clone(),
                    crate::daemonset::Config {
                        concurrency: opts.concurrent_daemonset_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::STATEFULSET => running.push(
                crate::statefulset::run(
                    client.clone(),
                    crate::statefulset::Config {
                        concurrency: opts.concurrent_statefulset_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::NODE_LIFECYCLE => running.push(
                crate::nodelifecycle::run(
                    client.clone(),
                    crate::nodelifecycle::Config {
                        monitor_period: opts.node_monitor_period,
                        grace_period: opts.node_monitor_grace_period,
                        startup_grace_period: opts.node_startup_grace_period,
                        ..crate::nodelifecycle::Config::default()
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::TAINT_EVICTION => running.push(
                crate::tainteviction::run(
                    client.clone(),
                    crate::tainteviction::Config::default(),
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::NODE_IPAM if !opts.allocate_node_cidrs => {
                tracing::info!(
                    controller = *name,
                    "node CIDR allocation disabled by --allocate-node-cidrs=false"
                );
            }
            controllers::NODE_IPAM => running.push(
                crate::nodeipam::run(
                    client.clone(),
                    crate::nodeipam::Config {
                        cluster_cidrs: opts.cluster_cidr.clone(),
                        node_mask_ipv4: opts
                            .node_cidr_mask_size_ipv4
                            .or(opts.node_cidr_mask_size)
                            .unwrap_or(24),
                        node_mask_ipv6: opts
                            .node_cidr_mask_size_ipv6
                            .or(opts.node_cidr_mask_size)
                            .unwrap_or(64),
                        ..crate::nodeipam::Config::default()
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::ENDPOINTS => running.push(
                crate::endpoints::run(
                    client.clone(),
                    crate::endpoints::Config {
                        concurrency: opts.concurrent_endpoint_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::ENDPOINTSLICE => running.push(
                crate::endpointslice::run(
                    client.clone(),
                    crate::endpointslice::Config {
                        concurrency: opts.concurrent_service_endpoint_syncs,
                        max_endpoints_per_slice: usize::from(opts.max_endpoints_per_slice),
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::ROOT_CA_CERT_PUBLISHER => {
                match crate::rootcacertpublisher::root_ca(
                    opts.root_ca_file.as_deref(),
                    &opts.kubeconfig,
                ) {
                    Ok(ca) => running.push(
                        crate::rootcacertpublisher::run(client.clone(), ca, shutdown.signal())
                            .boxed(),
                    ),
                    Err(e) => tracing::error!(controller = *name, error = %e, "not started"),
                }
            }
            controllers::RESOURCE_QUOTA => running.push(
                crate::resourcequota::run(
                    client.clone(),
                    crate::resourcequota::Config {
                        resync_period: opts.resource_quota_sync_period,
                        concurrency: opts.concurrent_resource_quota_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::SERVICE_ACCOUNT => {
                running.push(crate::serviceaccount::run(client.clone(), shutdown.signal()).boxed())
            }
            controllers::JOB => running.push(
                crate::job::run(
                    client.clone(),
                    crate::job::Config {
                        concurrency: opts.concurrent_job_syncs,
                        pod_failure_backoff: opts.job_pod_failure_backoff,
                        pod_failure_backoff_max: opts.job_pod_failure_backoff_max,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::CRONJOB => running.push(
                crate::cronjob::run(
                    client.clone(),
                    crate::cronjob::Config {
                        concurrency: opts.concurrent_cron_job_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            controllers::TTL_AFTER_FINISHED => running.push(
                crate::ttlafterfinished::run(
                    client.clone(),
                    crate::ttlafterfinished::Config {
                        concurrency: opts.concurrent_ttl_after_finished_syncs,
                    },
                    shutdown.signal(),
                )
                .boxed(),
            ),
            other => tracing::warn!(
                controller = other,
                "controller is known but not wired; skipped"
            ),
        }
    }
    if running.is_empty() {
        tracing::warn!("no controllers enabled; idling until shutdown");
        shutdown.wait().await;
        return;
    }
    futures::future::join_all(running).await;
}
