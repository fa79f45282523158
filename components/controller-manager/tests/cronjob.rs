//! The CronJob controller (with the Job controller and a hollow node) against real etcd and
//! the real kadm-apiserver. A CronJob whose last run lies minutes back runs the most recent
//! missed time at once; its Job completes; finished Jobs beyond the history limits are
//! deleted; 200 missed minutes raise `TooManyMissedTimes`; and a fresh every-minute
//! CronJob in another time zone creates its Job on the next minute (a real wait, ≤ 75 s).

mod common;

use std::time::Duration;

use common::wait_for;
use common::workload::{self, Started, event_reasons, hollow};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

async fn start(ns: &str) -> anyhow::Result<Started> {
    workload::start(
        &["--controllers", "cronjob,job,garbagecollector"],
        ns,
        hollow("cjnode", 1),
    )
    .await
}

fn cronjob(name: &str, schedule: &str, extra: serde_json::Value) -> anyhow::Result<CronJob> {
    let mut spec = json!({
        "schedule": schedule,
        "jobTemplate": {"metadata": {"labels": {"cron": name}}, "spec": {"template": {
            "metadata": {"annotations": {"hollow.kadm.io/exit-after-seconds": "1"}},
            "spec": {"nodeName": "cjnode-0", "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox:1"}]}}}}
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

fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// A finished Job of `cj` that another controller manages (so the Job controller leaves it).
async fn history_job(
    jobs: &Api<Job>,
    cj: &CronJob,
    name: &str,
    started: Timestamp,
    outcome: &str,
) -> anyhow::Result<()> {
    let owner = json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": cj.name_any(),
        "uid": cj.uid(), "controller": true, "blockOwnerDeletion": true});
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": [owner]},
        "spec": {"managedBy": "example.com/elsewhere", "suspend": true, "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}
    }))?;
    let mut job = jobs.create(&PostParams::default(), &job).await?;
    let t = json!(started.to_string());
    let (interim, last) = if outcome == "Complete" {
        ("SuccessCriteriaMet", "Complete")
    } else {
        ("FailureTarget", "Failed")
    };
    let mut status = json!({"startTime": t, "conditions": [
        {"type": interim, "status": "True", "lastTransitionTime": t},
        {"type": last, "status": "True", "lastTransitionTime": t}]});
    if outcome == "Complete" {
        status["completionTime"] = t.clone();
        status["succeeded"] = json!(1);
    } else {
        status["failed"] = json!(1);
    }
    job.status = Some(serde_json::from_value(status)?);
    jobs.replace_status(name, &PostParams::default(), &job)
        .await?;
    Ok(())
}

/// Writes `status.lastScheduleTime`, then lets the CronJob run.
async fn last_ran_at(cronjobs: &Api<CronJob>, name: &str, at: Timestamp) -> anyhow::Result<()> {
    // A merge patch, not a replace: the controller writes the status concurrently (it
    // sees the history Jobs), and a replace from a stale read would conflict.
    cronjobs
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastScheduleTime": Time(at)}})),
        )
        .await?;
    cronjobs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await?;
    Ok(())
}

fn minute_floor(t: Timestamp, every: i64) -> Timestamp {
    let s = t.as_second();
    Timestamp::from_second(s - s.rem_euclid(60 * every)).expect("timestamp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_runs_the_missed_time_completes_and_keeps_history_limits() -> anyhow::Result<()> {
    let ns = "cron";
    let (_cluster, client, _cm, _nodes) = start(ns).await?;
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let cj = cronjobs
        .create(
            &PostParams::default(),
            &cronjob(
                "nightly",
                "*/5 * * * *",
                json!({"suspend": true, "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1,
                    "timeZone": "Etc/UTC"}),
            )?,
        )
        .await?;
    let now = Timestamp::now();
    let ago = |m: i64| now - SignedDuration::from_mins(m);
    history_job(&jobs, &cj, "nightly-old1", ago(60), "Complete").await?;
    history_job(&jobs, &cj, "nightly-old2", ago(50), "Complete").await?;
    history_job(&jobs, &cj, "nightly-f1", ago(40), "Failed").await?;
    history_job(&jobs, &cj, "nightly-f2", ago(30), "Failed").await?;
    last_ran_at(&cronjobs, "nightly", ago(12)).await?;

    // The most recent */5 time is due already: its Job comes at once.
    let history = ["nightly-old1", "nightly-old2", "nightly-f1", "nightly-f2"];
    let job = wait_for("the job of the missed time", WAIT, || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|j| !history.contains(&j.name_any().as_str()))
    })
    .await;
    let name = job.name_any();
    let ann = job
        .annotations()
        .get(SCHEDULED)
        .cloned()
        .unwrap_or_default();
    let due: Timestamp = ann.parse()?;
    assert_eq!(due, minute_floor(due, 5), "{ann}");
    assert!(due > ago(12) && due <= Timestamp::now(), "{ann}");
    assert_eq!(name, format!("nightly-{}", due.as_second() / 60));
    assert!(ann.ends_with('Z'), "{ann}");
    assert_eq!(
        job.labels().get("cron").map(String::as_str),
        Some("nightly")
    );
    let owner = &job.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CronJob", cj.uid().expect("uid").as_str())
    );

    // It completes; the CronJob sees it and records the success.
    wait_for("the job completes", WAIT, || async {
        (finished(&jobs.get(&name).await.ok()?) == Some("Complete")).then_some(())
    })
    .await;
    let cj = wait_for("cronjob status after the run", WAIT, || async {
        let cj = cronjobs.get("nightly").await.ok()?;
        let st = cj.status.clone()?;
        (st.active.as_ref().is_none_or(Vec::is_empty) && st.last_successful_time.is_some())
            .then_some(cj)
    })
    .await;
    let st = cj.status.clone().expect("status");
    assert_eq!(st.last_schedule_time.map(|t| t.0), Some(due));

    // History: the newest Complete (the new run) and the newest Failed stay.
    let left = wait_for("history trimmed", WAIT, || async {
        let mut names: Vec<String> = jobs
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.name_any())
            .collect();
        names.sort();
        (names.len() == 2).then_some(names)
    })
    .await;
    assert_eq!(left, vec![name.clone(), "nightly-f2".to_string()]);
    let r = wait_for("cronjob events", WAIT, || async {
        let r = event_reasons(&client, ns, "nightly").await;
        (["SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"]
            .iter()
            .all(|x| r.iter().any(|y| y == x)))
        .then_some(r)
    })
    .await;
    assert!(!r.iter().any(|x| x == "TooManyMissedTimes"), "{r:?}");

    // 200 missed minutes: warned about, and the latest one still runs.
    cronjobs
        .create(
            &PostParams::default(),
            &cronjob(
                "busy",
                "* * * * *",
                json!({"suspend": true, "concurrencyPolicy": "Forbid"}),
            )?,
        )
        .await?;
    last_ran_at(&cronjobs, "busy", ago(200)).await?;
    wait_for("TooManyMissedTimes", WAIT, || async {
        event_reasons(&client, ns, "busy")
            .await
            .iter()
            .any(|r| r == "TooManyMissedTimes")
            .then_some(())
    })
    .await;
    wait_for("a job of busy", WAIT, || async {
        let list = jobs.list(&ListParams::default()).await.ok()?.items;
        list.iter()
            .any(|j| j.name_any().starts_with("busy-"))
            .then_some(())
    })
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_creates_its_job_on_the_next_minute_in_its_time_zone() -> anyhow::Result<()> {
    let ns = "tick";
    let (_cluster, client, _cm, _nodes) = start(ns).await?;
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let created = cronjobs
        .create(
            &PostParams::default(),
            &cronjob("tick", "* * * * *", json!({"timeZone": "Asia/Tokyo"}))?,
        )
        .await?;
    let born = created
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .expect("creationTimestamp");
    let job = wait_for("the first job of tick", Duration::from_secs(75), || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|j| j.name_any().starts_with("tick-"))
    })
    .await;
    let ann = job
        .annotations()
        .get(SCHEDULED)
        .cloned()
        .unwrap_or_default();
    assert!(ann.ends_with("+09:00"), "{ann}");
    let at: Timestamp = ann.parse()?;
    assert_eq!(at.as_second() % 60, 0);
    assert!(
        at > born && at.duration_since(born) <= SignedDuration::from_secs(60),
        "{at} vs {born}"
    );
    assert_eq!(job.name_any(), format!("tick-{}", at.as_second() / 60));
    wait_for("tick's job completes", WAIT, || async {
        (finished(&jobs.get(&job.name_any()).await.ok()?) == Some("Complete")).then_some(())
    })
    .await;
    let cj = cronjobs.get("tick").await?;
    assert_eq!(
        cj.status.and_then(|s| s.last_schedule_time).map(|t| t.0),
        Some(at)
    );
    assert!(
        event_reasons(&client, ns, "tick")
            .await
            .iter()
            .any(|r| r == "SuccessfulCreate")
    );
    Ok(())
}
