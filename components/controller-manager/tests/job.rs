//! The Job and TTL-after-finished controllers against real etcd and the real
//! kadm-apiserver, with a hollow node as kubelet (templates name the node; the hollow
//! kubelet ends pods annotated `hollow.kadm.io/exit-after-seconds` with
//! `hollow.kadm.io/exit-code`): a Job running 3 completions 2 at a time to `Complete` and
//! then deleted after its TTL, a Job failing with `BackoffLimitExceeded` after its
//! replacement pod failed too, and one failing with `DeadlineExceeded`.

mod common;

use std::time::Duration;

use common::wait_for;
use common::workload::{self, Started, event_reasons, hollow};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn start(ns: &str) -> anyhow::Result<Started> {
    workload::start(
        &[
            "--controllers",
            "job,ttl-after-finished,garbagecollector",
            "--job-pod-failure-backoff=1s",
        ],
        ns,
        hollow("jobnode", 1),
    )
    .await
}

/// A Job whose pods run on the hollow node and exit after `after` seconds with `code`.
fn job(name: &str, extra: serde_json::Value, after: u64, code: i32) -> anyhow::Result<Job> {
    let mut spec = json!({
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": {
                "hollow.kadm.io/exit-after-seconds": after.to_string(),
                "hollow.kadm.io/exit-code": code.to_string()}},
            "spec": {"nodeName": "jobnode-0", "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox:1"}]}
        }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": spec}),
    )?)
}

fn condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn job_pods_of<'a>(pods: &'a [Pod], uid: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_runs_three_completions_two_at_a_time_then_expires() -> anyhow::Result<()> {
    let ns = "jobs";
    let (_cluster, client, _cm, _nodes) = start(ns).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = jobs
        .create(
            &PostParams::default(),
            &job(
                "pi",
                json!({"completions": 3, "parallelism": 2, "ttlSecondsAfterFinished": 3}),
                1,
                0,
            )?,
        )
        .await?;
    let uid = created.uid().expect("uid");
    // The apiserver generated the selector and the template labels.
    let spec = created.spec.clone().expect("spec");
    assert_eq!(
        spec.selector
            .and_then(|s| s.match_labels)
            .and_then(|m| m.get("batch.kubernetes.io/controller-uid").cloned()),
        Some(uid.clone())
    );

    // Never more than two pods at once, until Complete.
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = wait_for("job pi complete", WAIT, || {
        let (jobs, pods, uid, most) = (jobs.clone(), pods.clone(), uid.clone(), most.clone());
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?.items;
            let running = job_pods_of(&list, &uid)
                .iter()
                .filter(|p| {
                    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                    !matches!(phase, Some("Succeeded" | "Failed"))
                        && p.metadata.deletion_timestamp.is_none()
                })
                .count();
            most.fetch_max(running, std::sync::atomic::Ordering::Relaxed);
            let j = jobs.get("pi").await.ok()?;
            condition(&j, "Complete").is_some().then_some(j)
        }
    })
    .await;
    let most_active = most.load(std::sync::atomic::Ordering::Relaxed);
    assert!(most_active <= 2, "{most_active} pods ran at once");
    let st = done.status.clone().expect("status");
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.failed.unwrap_or(0), 0);
    assert_eq!(st.active.unwrap_or(0), 0);
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let complete = condition(&done, "Complete").expect("Complete");
    assert_eq!(complete.reason.as_deref(), Some("CompletionsReached"));
    assert_eq!(
        complete.message.as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    assert!(condition(&done, "SuccessCriteriaMet").is_some());

    // Its pods: labelled for the Job, owned by it, succeeded, and released (no finalizer).
    let list = pods.list(&ListParams::default()).await?.items;
    let mine = job_pods_of(&list, &uid);
    assert_eq!(mine.len(), 3);
    for p in &mine {
        let l = p.labels();
        assert_eq!(
            l.get("batch.kubernetes.io/job-name").map(String::as_str),
            Some("pi")
        );
        assert_eq!(l.get("job-name").map(String::as_str), Some("pi"));
        assert_eq!(l.get("batch.kubernetes.io/controller-uid"), Some(&uid));
        assert_eq!(l.get("controller-uid"), Some(&uid));
        assert!(p.name_any().starts_with("pi-"), "{}", p.name_any());
        assert!(
            !p.finalizers()
                .iter()
                .any(|f| f == "batch.kubernetes.io/job-tracking")
        );
        assert_eq!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded")
        );
    }
    let r = wait_for("job events", WAIT, || async {
        let r = event_reasons(&client, ns, "pi").await;
        (r.iter().filter(|x| *x == "SuccessfulCreate").count() >= 3
            && r.iter().any(|x| x == "Completed"))
        .then_some(r)
    })
    .await;
    assert!(!r.iter().any(|x| x == "BackoffLimitExceeded"), "{r:?}");

    // ttlSecondsAfterFinished: the Job and its pods go 3 s after it completed.
    wait_for("job pi deleted after its ttl", WAIT, || async {
        matches!(jobs.get_opt("pi").await, Ok(None)).then_some(())
    })
    .await;
    wait_for("pods of pi deleted", WAIT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?.items;
        job_pods_of(&list, &uid).is_empty().then_some(())
    })
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_fail_on_backoff_limit_and_deadline() -> anyhow::Result<()> {
    let ns = "failing";
    let (_cluster, client, _cm, _nodes) = start(ns).await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Every pod fails after a second; one retry is allowed.
    let crash = jobs
        .create(
            &PostParams::default(),
            &job("crash", json!({"backoffLimit": 1}), 1, 3)?,
        )
        .await?;
    // Runs far longer than its deadline.
    jobs.create(
        &PostParams::default(),
        &job(
            "slow",
            json!({"activeDeadlineSeconds": 3, "parallelism": 2, "completions": 2}),
            300,
            0,
        )?,
    )
    .await?;

    let failed = wait_for("job crash failed", WAIT, || async {
        let j = jobs.get("crash").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    let f = condition(&failed, "Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(
        f.message.as_deref(),
        Some("Job has reached the specified backoff limit")
    );
    assert_eq!(
        condition(&failed, "FailureTarget").and_then(|c| c.reason.as_deref()),
        Some("BackoffLimitExceeded")
    );
    let st = failed.status.clone().expect("status");
    assert_eq!(st.failed, Some(2));
    assert_eq!(st.succeeded.unwrap_or(0), 0);
    assert!(st.completion_time.is_none());
    // The first pod and its one replacement, both failed and released.
    let list = pods.list(&ListParams::default()).await?.items;
    let mine = job_pods_of(&list, &crash.uid().expect("uid"));
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|p| p.finalizers().is_empty()));
    wait_for("BackoffLimitExceeded event", WAIT, || async {
        event_reasons(&client, ns, "crash")
            .await
            .iter()
            .any(|r| r == "BackoffLimitExceeded")
            .then_some(())
    })
    .await;

    let slow = wait_for("job slow failed", WAIT, || async {
        let j = jobs.get("slow").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    let f = condition(&slow, "Failed").expect("Failed");
    assert_eq!(f.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        f.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    let st = slow.status.clone().expect("status");
    // Both running pods were stopped and count as failed.
    assert_eq!(st.failed, Some(2));
    assert_eq!(st.active.unwrap_or(0), 0);
    wait_for("DeadlineExceeded event", WAIT, || async {
        event_reasons(&client, ns, "slow")
            .await
            .iter()
            .any(|r| r == "DeadlineExceeded")
            .then_some(())
    })
    .await;
    Ok(())
}
