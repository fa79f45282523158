//! A pod's sandboxes and containers as the runtime has them, found by the pod-uid label
//! (which is also how a restarted kubelet adopts what it created before).

use super::labels;
use crate::cri::{Runtime, api};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct SandboxState {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    /// Pod IPs (empty for host-network sandboxes).
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    pub restart_count: i32,
    pub hash: String,
    pub state: api::ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
}

impl ContainerState {
    pub fn running(&self) -> bool {
        self.state == api::ContainerState::ContainerRunning
    }
    pub fn exited(&self) -> bool {
        self.state == api::ContainerState::ContainerExited
    }
}

/// Everything the runtime has for one pod; newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRuntimeState {
    pub sandboxes: Vec<SandboxState>,
    pub containers: Vec<ContainerState>,
}

impl PodRuntimeState {
    /// Reads the pod's sandboxes and containers from the runtime.
    pub async fn gather<R: Runtime>(runtime: &R, uid: &str) -> Result<Self> {
        let selector =
            std::collections::HashMap::from([(labels::POD_UID.to_string(), uid.to_string())]);
        let sandboxes = runtime
            .list_pod_sandboxes(Some(api::PodSandboxFilter {
                label_selector: selector.clone(),
                ..Default::default()
            }))
            .await?;
        let mut out = PodRuntimeState::default();
        for sb in sandboxes {
            let ready = sb.state == api::PodSandboxState::SandboxReady as i32;
            let mut ips = Vec::new();
            if ready {
                match runtime.pod_sandbox_status(&sb.id).await {
                    Ok(st) => {
                        if let Some(n) = st.network {
                            if !n.ip.is_empty() {
                                ips.push(n.ip);
                            }
                            ips.extend(n.additional_ips.into_iter().map(|i| i.ip));
                        }
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
            out.sandboxes.push(SandboxState {
                id: sb.id,
                attempt: sb.metadata.map_or(0, |m| m.attempt),
                ready,
                created_at: sb.created_at,
                ips,
            });
        }
        out.sandboxes
            .sort_by_key(|s| std::cmp::Reverse(s.created_at));

        let containers = runtime
            .list_containers(Some(api::ContainerFilter {
                label_selector: selector,
                ..Default::default()
            }))
            .await?;
        for c in containers {
            let st = match runtime.container_status(&c.id).await {
                Ok(s) => s,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            let restart_count = st
                .annotations
                .get(labels::CONTAINER_RESTART_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.containers.push(ContainerState {
                id: c.id,
                name: st
                    .labels
                    .get(labels::CONTAINER_NAME)
                    .cloned()
                    .or_else(|| st.metadata.as_ref().map(|m| m.name.clone()))
                    .unwrap_or_default(),
                sandbox_id: c.pod_sandbox_id,
                restart_count,
                hash: st
                    .annotations
                    .get(labels::CONTAINER_HASH)
                    .cloned()
                    .unwrap_or_default(),
                state: api::ContainerState::try_from(st.state)
                    .unwrap_or(api::ContainerState::ContainerUnknown),
                created_at: st.created_at,
                started_at: st.started_at,
                finished_at: st.finished_at,
                exit_code: st.exit_code,
                reason: st.reason,
                message: st.message,
                image: st.image.map(|i| i.image).unwrap_or_default(),
                image_ref: st.image_ref,
            });
        }
        out.containers.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.restart_count.cmp(&a.restart_count))
        });
        Ok(out)
    }

    pub fn latest_sandbox(&self) -> Option<&SandboxState> {
        self.sandboxes.first()
    }

    /// The newest container named `name`.
    pub fn latest(&self, name: &str) -> Option<&ContainerState> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The one before the newest (`lastState`, `kubectl logs --previous`).
    pub fn previous(&self, name: &str) -> Option<&ContainerState> {
        self.containers.iter().filter(|c| c.name == name).nth(1)
    }

    pub fn running(&self) -> impl Iterator<Item = &ContainerState> {
        self.containers.iter().filter(|c| c.running())
    }
}
