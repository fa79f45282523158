//! Which Services a pod change concerns: the Services whose selector matches the pod now,
//! plus those it matched before (a pod whose labels changed leaves the old Services'
//! endpoints), as Kubernetes' `GetServicesToUpdateOnPodChange`.

use std::collections::HashMap;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::membership;

/// The Services in the pod's namespace whose selector matches its labels.
pub fn services_selecting(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace();
    services
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| {
            membership::selector(s)
                .is_some_and(|sel| membership::selects(sel, pod.metadata.labels.as_ref()))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn pod_key(pod: &Pod) -> (String, String) {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Turns a pod watch into the Services to sync. Each pod's last set of Services is
/// remembered, so a change away from a Service still syncs it. After a (re)list every
/// Service is synced, since deletions during a gap in the watch are never seen as events.
pub fn from_pod_events<S>(
    events: S,
    services: Store<Service>,
) -> impl Stream<Item = ObjectRef<Service>> + Send + 'static
where
    S: Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + 'static,
{
    let mut last: HashMap<(String, String), Vec<ObjectRef<Service>>> = HashMap::new();
    events.flat_map(move |ev| {
        let mut out: Vec<ObjectRef<Service>> = Vec::new();
        match ev {
            Ok(watcher::Event::Apply(pod)) => {
                let now = services_selecting(&services, &pod);
                let prev = if now.is_empty() {
                    last.remove(&pod_key(&pod))
                } else {
                    last.insert(pod_key(&pod), now.clone())
                };
                out.extend(prev.into_iter().flatten());
                out.extend(now);
            }
            Ok(watcher::Event::InitApply(pod)) => {
                let now = services_selecting(&services, &pod);
                if !now.is_empty() {
                    last.insert(pod_key(&pod), now);
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                out.extend(last.remove(&pod_key(&pod)).into_iter().flatten());
                out.extend(services_selecting(&services, &pod));
            }
            Ok(watcher::Event::InitDone) => {
                out.extend(
                    services
                        .state()
                        .iter()
                        .map(|s| ObjectRef::from_obj(s.as_ref())),
                );
            }
            Ok(watcher::Event::Init) => {}
            Err(e) => tracing::debug!(error = %e, "pod watch error, retrying"),
        }
        // Each Service once.
        let mut seen = std::collections::HashSet::new();
        out.retain(|r| seen.insert(r.clone()));
        stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn svc(name: &str, app: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "n"},
            "spec": {"selector": {"app": app}}}))
        .expect("svc")
    }

    fn pod(app: &str) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": app}}}),
        )
        .expect("pod")
    }

    #[tokio::test]
    async fn label_changes_sync_the_old_and_the_new_service() {
        let (store, mut writer) = reflector::store::<Service>();
        for s in [svc("a", "a"), svc("b", "b")] {
            writer.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let events = stream::iter([
            Ok(watcher::Event::Apply(pod("a"))),
            Ok(watcher::Event::Apply(pod("b"))),
            Ok(watcher::Event::Delete(pod("b"))),
            Ok(watcher::Event::Apply(pod("none"))),
        ]);
        let names: Vec<String> = from_pod_events(events, store)
            .map(|r| r.name)
            .collect()
            .await;
        assert_eq!(names, ["a", "a", "b", "b"]);
    }
}
