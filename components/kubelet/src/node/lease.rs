//! The node's Lease in `kube-node-lease`: the kubelet's cheap heartbeat, renewed every
//! quarter of its duration (10 s of 40 s). The node lifecycle controller reads it.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::error::{Error, Result};

pub const NAMESPACE: &str = "kube-node-lease";

/// Renews one node's lease; remembers the last written object for the next update.
pub struct LeaseKeeper {
    api: Api<Lease>,
    node: String,
    duration_seconds: i32,
    latest: Option<Lease>,
}

impl LeaseKeeper {
    pub fn new(client: Client, node: &str, duration_seconds: i32) -> Self {
        Self {
            api: Api::namespaced(client, NAMESPACE),
            node: node.to_string(),
            duration_seconds,
            latest: None,
        }
    }

    /// How often to renew.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.duration_seconds).unwrap_or(40) * 250)
    }

    fn fresh(&self, node_uid: &str, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.node.clone()),
                namespace: Some(NAMESPACE.to_string()),
                owner_references: (!node_uid.is_empty()).then(|| {
                    vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: self.node.clone(),
                        uid: node_uid.to_string(),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.node.clone()),
                lease_duration_seconds: Some(self.duration_seconds),
                renew_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Writes `renewTime = now`, creating the lease if needed. One conflict is retried
    /// with the current object.
    pub async fn renew(&mut self, node_uid: &str, now: Timestamp) -> Result<()> {
        let object = || format!("lease {NAMESPACE}/{}", self.node);
        for _ in 0..2 {
            let current = match self.latest.take() {
                Some(l) => Some(l),
                None => self
                    .api
                    .get_opt(&self.node)
                    .await
                    .map_err(|e| Error::api("get", object(), e))?,
            };
            let result = match current {
                None => {
                    self.api
                        .create(&PostParams::default(), &self.fresh(node_uid, now))
                        .await
                }
                Some(mut l) => {
                    let spec = l.spec.get_or_insert_with(LeaseSpec::default);
                    spec.holder_identity = Some(self.node.clone());
                    spec.lease_duration_seconds = Some(self.duration_seconds);
                    spec.renew_time = Some(MicroTime(now));
                    if l.metadata
                        .owner_references
                        .as_ref()
                        .is_none_or(Vec::is_empty)
                        && !node_uid.is_empty()
                    {
                        l.metadata.owner_references =
                            self.fresh(node_uid, now).metadata.owner_references;
                    }
                    self.api
                        .replace(&self.node, &PostParams::default(), &l)
                        .await
                }
            };
            match result {
                Ok(l) => {
                    self.latest = Some(l);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(Error::api("renew", object(), e)),
            }
        }
        Err(Error::Host(format!(
            "{} kept changing while it was renewed",
            object()
        )))
    }
}
