//! One kube-runtime watcher per monitored resource, feeding the graph.
//!
//! The objects' metadata is all the graph keeps. kadm's apiserver does not serve the
//! `as=PartialObjectMetadata` representation yet, so the watches carry whole objects
//! ([`DynamicObject`]) and only their metadata is kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::graph::Node;
use super::resources::key;
use super::shared::Shared;
use crate::controllers::GARBAGE_COLLECTOR;

struct Monitor {
    synced: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

/// The running monitors, by [`key`]. Dropping them stops them.
#[derive(Default)]
pub struct Monitors {
    running: HashMap<String, Monitor>,
}

impl Monitors {
    /// Starts monitors for the `wanted` resources that have none and stops the monitors of
    /// resources no longer wanted, except those of the group-versions whose discovery
    /// `failed` this time (they are kept as they are, as Kubernetes does).
    pub fn sync(
        &mut self,
        wanted: &[ApiResource],
        failed: &BTreeMap<String, String>,
        client: &Client,
        shared: &Arc<Shared>,
    ) {
        let wanted_keys: HashSet<String> = wanted.iter().map(key).collect();
        let stale: Vec<String> = self
            .running
            .keys()
            .filter(|k| !wanted_keys.contains(*k))
            .filter(|k| !failed.keys().any(|gv| group_version_of(k) == *gv))
            .cloned()
            .collect();
        for k in stale {
            if let Some(m) = self.running.remove(&k) {
                m.task.abort();
                tracing::info!(controller = GARBAGE_COLLECTOR, resource = %k, "resource no longer served; stopped its monitor");
            }
        }
        for r in wanted {
            let k = key(r);
            if self.running.contains_key(&k) {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            let task = tokio::spawn(monitor(
                client.clone(),
                Arc::new(r.clone()),
                shared.clone(),
                tx,
            ));
            tracing::debug!(controller = GARBAGE_COLLECTOR, resource = %k, "started monitor");
            self.running.insert(k, Monitor { synced: rx, task });
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// The monitors that have not listed their resource yet.
    pub fn unsynced(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .running
            .iter()
            .filter(|(_, m)| !*m.synced.borrow())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Waits until every monitor has listed its resource once; `false` after `timeout`.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let all = async {
            for m in self.running.values() {
                let mut rx = m.synced.clone();
                // A monitor that ended (aborted) counts as synced: nothing more comes from it.
                let _ = rx.wait_for(|synced| *synced).await;
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}

impl Drop for Monitors {
    fn drop(&mut self) {
        for m in self.running.values() {
            m.task.abort();
        }
    }
}

/// `group/version` of a monitor key (`/v1/pods` → `v1`, `apps/v1/deployments` → `apps/v1`),
/// as discovery names group-versions.
fn group_version_of(key: &str) -> String {
    let mut parts = key.splitn(3, '/');
    let group = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// Watches one resource forever (the watcher re-lists and backs off by itself), feeding the
/// graph; `synced` turns true after the first complete list.
async fn monitor(
    client: Client,
    resource: Arc<ApiResource>,
    shared: Arc<Shared>,
    synced: watch::Sender<bool>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, resource.as_ref());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<HashSet<String>> = None;
    let observe = |obj: &DynamicObject| {
        let node = Node::from_meta(&obj.metadata, resource.clone())?;
        let uid = node.identity.uid.clone();
        shared.observe(node);
        Some(uid)
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => relist = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(obj)) => {
                if let Some(uid) = observe(&obj)
                    && let Some(seen) = relist.as_mut()
                {
                    seen.insert(uid);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = relist.take() {
                    let gone = shared.forget_unseen(&resource, &seen);
                    if gone > 0 {
                        tracing::debug!(controller = GARBAGE_COLLECTOR, resource = %key(&resource), gone, "objects deleted while the watch was down");
                    }
                }
                synced.send_replace(true);
            }
            Ok(watcher::Event::Apply(obj)) => {
                observe(&obj);
            }
            Ok(watcher::Event::Delete(obj)) => {
                if let Some(uid) = obj.metadata.uid.as_deref() {
                    shared.forget(uid);
                }
            }
            Err(e) => {
                tracing::warn!(controller = GARBAGE_COLLECTOR, resource = %key(&resource), error = %e, "watch failed; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions_of_monitor_keys() {
        assert_eq!(group_version_of("/v1/pods"), "v1");
        assert_eq!(group_version_of("apps/v1/deployments"), "apps/v1");
    }
}
