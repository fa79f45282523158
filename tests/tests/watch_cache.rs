//! The watch cache against real etcd: consistent and resourceVersion="0" lists, watches
//! resumed from a resourceVersion inside and outside the cache's window, a slow watcher
//! closed while a fast one keeps up, and 200 watchers fed from one etcd watch.

use std::time::{Duration, Instant};

use http::Method;
use kadm_e2e::{H2Client, Lines, Options, TestCluster, WAIT, Windows};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, labels: Value, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": {"k": data}})
}

fn rv_of(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no integer resourceVersion in {v}"))
}

async fn create(c: &H2Client, obj: &Value) -> anyhow::Result<Value> {
    let r = c
        .request(
            Method::POST,
            CMS,
            Some("application/json"),
            serde_json::to_vec(obj)?,
        )
        .await?;
    anyhow::ensure!(r.status == 201, "create: {} {}", r.status, r.text());
    r.json()
}

async fn patch(c: &H2Client, name: &str, patch: &Value) -> anyhow::Result<Value> {
    let r = c
        .request(
            Method::PATCH,
            &format!("{CMS}/{name}"),
            Some("application/merge-patch+json"),
            serde_json::to_vec(patch)?,
        )
        .await?;
    anyhow::ensure!(r.status == 200, "patch: {} {}", r.status, r.text());
    r.json()
}

/// Deletes a ConfigMap; Kubernetes answers with a `Status`, so the deletion's
/// resourceVersion is learnt from the watch.
async fn delete(c: &H2Client, name: &str) -> anyhow::Result<Value> {
    let r = c
        .request(
            Method::DELETE,
            &format!("{CMS}/{name}"),
            None,
            bytes::Bytes::new(),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "delete: {} {}", r.status, r.text());
    r.json()
}

async fn list(c: &H2Client, query: &str) -> anyhow::Result<Value> {
    let r = c.get(&format!("{CMS}?{query}")).await?;
    anyhow::ensure!(r.status == 200, "list {query}: {} {}", r.status, r.text());
    r.json()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// The next watch event as (type, name, resourceVersion), skipping bookmarks.
async fn next_event(lines: &mut Lines) -> anyhow::Result<(String, String, i64)> {
    loop {
        let line = lines
            .next_within(WAIT)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        let ev: Value = serde_json::from_slice(&line)?;
        let ty = ev["type"].as_str().unwrap_or_default().to_string();
        if ty == "BOOKMARK" {
            continue;
        }
        anyhow::ensure!(ty != "ERROR", "watch error: {ev}");
        let obj = &ev["object"];
        return Ok((
            ty,
            obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            rv_of(obj),
        ));
    }
}

async fn watch(c: &H2Client, query: &str) -> anyhow::Result<Lines> {
    let (status, lines) = c.stream(&format!("{CMS}?watch=true&{query}")).await?;
    anyhow::ensure!(status == 200, "watch {query}: {status}");
    Ok(lines)
}

#[tokio::test]
async fn consistent_list_sees_a_write_that_just_happened() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let c = cluster.h2(Windows::GENEROUS).await?;
    for i in 0..30 {
        let name = format!("fresh-{i}");
        let created = create(&c, &cm(&name, json!({}), "x")).await?;
        let l = list(&c, "").await?;
        assert!(
            names(&l).contains(&name),
            "{name} missing right after its create"
        );
        assert!(rv_of(&l) >= rv_of(&created), "list rv older than the write");
        // A paginated consistent list (first page from the cache) sees it too.
        let first = list(&c, "limit=1").await?;
        assert!(rv_of(&first) >= rv_of(&created));
    }
    // A write that bypasses this apiserver (straight into etcd) is seen by the next
    // consistent list as well: the list waits for etcd's current revision.
    let stored = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "from-etcd", "namespace": "default", "uid": "00000000-0000-0000-0000-000000000001",
            "creationTimestamp": "2025-01-01T00:00:00Z"}, "data": {"k": "v"}});
    let out = cluster
        .etcdctl(&[
            "put",
            "/registry/configmaps/default/from-etcd",
            &stored.to_string(),
        ])
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = list(&c, "").await?;
    assert!(names(&l).contains(&"from-etcd".to_string()), "{l}");
    assert!(
        !cluster.apiserver_log().contains("did not catch up"),
        "consistent lists fell back to etcd"
    );
    Ok(())
}

#[tokio::test]
async fn resource_version_0_list_is_served_whole_and_too_new_is_504() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let c = cluster.h2(Windows::GENEROUS).await?;
    for i in 0..5 {
        create(&c, &cm(&format!("any-{i}"), json!({}), "x")).await?;
    }
    let consistent = list(&c, "").await?;
    // resourceVersion=0 reads the cache as it is (here: at least as new as the consistent
    // list before it) and, as in Kubernetes, ignores limit.
    let any = list(&c, "resourceVersion=0&limit=2").await?;
    assert_eq!(names(&any).len(), 5, "{any}");
    assert!(any["metadata"].get("continue").is_none(), "{any}");
    assert!(rv_of(&any) >= rv_of(&consistent));
    // NotOlderThan a revision the cache has: served at once.
    let at = rv_of(&consistent);
    let not_older = list(
        &c,
        &format!("resourceVersion={at}&resourceVersionMatch=NotOlderThan"),
    )
    .await?;
    assert!(rv_of(&not_older) >= at);
    assert_eq!(names(&not_older).len(), 5);
    // A first page from the cache continues through etcd at the same revision.
    let page = list(&c, "limit=2").await?;
    assert_eq!(names(&page).len(), 2);
    assert_eq!(page["metadata"]["remainingItemCount"], 3);
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("continue token");
    create(&c, &cm("any-late", json!({}), "x")).await?;
    let rest = list(&c, &format!("limit=10&continue={token}")).await?;
    assert_eq!(
        names(&rest),
        ["any-2", "any-3", "any-4"],
        "the continuation keeps the first page's snapshot"
    );
    assert_eq!(rv_of(&rest), rv_of(&page));
    // A resourceVersion the cache does not reach in time: 504 Timeout, as Kubernetes.
    let future = at + 1_000_000;
    let started = Instant::now();
    let r = c
        .get(&format!(
            "{CMS}?resourceVersion={future}&resourceVersionMatch=NotOlderThan"
        ))
        .await?;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.reason(), "Timeout");
    assert!(
        r.text()
            .contains(&format!("Too large resource version: {future}")),
        "{}",
        r.text()
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "did not wait");
    Ok(())
}

#[tokio::test]
async fn watch_from_a_resource_version_in_the_window_replays_what_followed() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let c = cluster.h2(Windows::GENEROUS).await?;
    let a = create(&c, &cm("a", json!({"app": "web"}), "1")).await?;
    let a2 = patch(&c, "a", &json!({"data": {"k": "2"}})).await?;
    let b = create(&c, &cm("b", json!({"app": "web"}), "1")).await?;
    let a3 = patch(&c, "a", &json!({"metadata": {"labels": {"app": "db"}}})).await?;
    delete(&c, "b").await?;

    // Started after the changes happened: served from the cache's history.
    let mut all = watch(&c, &format!("resourceVersion={}", rv_of(&a))).await?;
    let mut web = watch(
        &c,
        &format!("resourceVersion={}&labelSelector=app%3Dweb", rv_of(&a)),
    )
    .await?;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut all).await?);
    }
    let gone = got[3].2;
    assert!(gone > rv_of(&a3), "{got:?}");
    let want = vec![
        ("MODIFIED".to_string(), "a".to_string(), rv_of(&a2)),
        ("ADDED".into(), "b".into(), rv_of(&b)),
        ("MODIFIED".into(), "a".into(), rv_of(&a3)),
        ("DELETED".into(), "b".into(), gone),
    ];
    assert_eq!(got, want);
    // The selector sees `a` leave (DELETED, with its new state) and `b` come and go.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_event(&mut web).await?);
    }
    let want = vec![
        ("MODIFIED".to_string(), "a".to_string(), rv_of(&a2)),
        ("ADDED".into(), "b".into(), rv_of(&b)),
        ("DELETED".into(), "a".into(), rv_of(&a3)),
        ("DELETED".into(), "b".into(), gone),
    ];
    assert_eq!(got, want);
    // And it goes on live; a watch without a resourceVersion and without initial
    // events starts at the most recent change.
    let mut latest = watch(&c, "sendInitialEvents=false").await?;
    let c2 = create(&c, &cm("c", json!({}), "1")).await?;
    assert_eq!(
        next_event(&mut all).await?,
        ("ADDED".into(), "c".into(), rv_of(&c2))
    );
    assert_eq!(
        next_event(&mut latest).await?,
        ("ADDED".into(), "c".into(), rv_of(&c2))
    );
    Ok(())
}

#[tokio::test]
async fn watch_older_than_the_window_is_410_expired_with_kubernetes_message() -> anyhow::Result<()>
{
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec!["--watch-cache-size=4".into()],
        ..Options::default()
    })
    .await?;
    let c = cluster.h2(Windows::GENEROUS).await?;
    let first = create(&c, &cm("hist", json!({}), "0")).await?;
    let mut revs = vec![rv_of(&first)];
    for i in 1..=6 {
        revs.push(rv_of(
            &patch(&c, "hist", &json!({"data": {"k": i.to_string()}})).await?,
        ));
    }
    // The window holds the last 4 changes (revs[3..]): a watch may start after revs[2].
    let (status, mut lines) = c
        .stream(&format!("{CMS}?watch=true&resourceVersion={}", revs[0]))
        .await?;
    assert_eq!(status, 200);
    let line = lines.next_within(WAIT).await?.expect("an ERROR event");
    let ev: Value = serde_json::from_slice(&line)?;
    assert_eq!(ev["type"], "ERROR", "{ev}");
    assert_eq!(ev["object"]["code"], 410, "{ev}");
    assert_eq!(ev["object"]["reason"], "Expired", "{ev}");
    assert_eq!(
        ev["object"]["message"],
        format!("too old resource version: {} ({})", revs[0], revs[2]),
        "{ev}"
    );
    assert!(
        lines.next_within(WAIT).await?.is_none(),
        "the stream ends after the error"
    );
    // The oldest start the window allows replays the last 4 changes.
    let mut ok = watch(&c, &format!("resourceVersion={}", revs[2])).await?;
    for want in &revs[3..] {
        let (ty, _, rv) = next_event(&mut ok).await?;
        assert_eq!((ty.as_str(), rv), ("MODIFIED", *want));
    }
    // Lists do not depend on the window.
    assert_eq!(names(&list(&c, "").await?), ["hist"]);
    Ok(())
}

#[tokio::test]
async fn a_watcher_that_never_reads_is_closed_while_a_fast_one_keeps_receiving()
-> anyhow::Result<()> {
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec!["--watch-queue-size=16".into()],
        ..Options::default()
    })
    .await?;
    let writer = cluster.h2(Windows::GENEROUS).await?;
    let start = rv_of(&list(&writer, "").await?);
    // The slow watcher's own connection lets the server send one 64 KiB window.
    let slow_conn = cluster.h2(Windows::MINIMAL).await?;
    let (status, mut slow) = slow_conn
        .stream(&format!("{CMS}?watch=true&resourceVersion={start}"))
        .await?;
    assert_eq!(status, 200);
    let fast_conn = cluster.h2(Windows::GENEROUS).await?;
    let mut fast = watch(&fast_conn, &format!("resourceVersion={start}")).await?;
    const N: usize = 200;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < N {
            got.push(next_event(&mut fast).await?);
        }
        anyhow::Ok(got)
    });
    // 200 changes of ~8 KiB: far more than the slow watcher's window, the server's
    // send buffer and its queue of 16 can hold.
    let big = "x".repeat(8 * 1024);
    let mut want = Vec::new();
    for i in 0..N {
        let o = create(&writer, &cm(&format!("big-{i:03}"), json!({}), &big)).await?;
        want.push(("ADDED".to_string(), format!("big-{i:03}"), rv_of(&o)));
    }
    let got = tokio::time::timeout(WAIT, reader).await???;
    assert_eq!(got, want, "the fast watcher got every event in order");

    // The slow one was closed: what it can still read ends early.
    let mut seen = 0;
    let deadline = Instant::now() + WAIT;
    while let Some(line) = slow.next_within(WAIT).await? {
        let ev: Value = serde_json::from_slice(&line)?;
        assert_eq!(ev["type"], "ADDED", "{ev}");
        seen += 1;
        anyhow::ensure!(Instant::now() < deadline, "the slow watch did not end");
    }
    assert!(seen < N, "the slow watcher received all {seen} events");
    assert!(
        cluster
            .apiserver_log()
            .contains("closing a watch that does not keep up"),
        "no log line about the slow watcher"
    );
    // The apiserver is fine, and the slow client can resume from where it stopped.
    assert_eq!(names(&list(&writer, "").await?).len(), N);
    Ok(())
}

#[tokio::test]
async fn two_hundred_watchers_receive_every_event_in_order() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let writer = cluster.h2(Windows::GENEROUS).await?;
    let start = rv_of(&list(&writer, "").await?);
    const WATCHERS: usize = 200;
    const CONNECTIONS: usize = 10;
    const CHANGES: usize = 100;
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        conns.push(cluster.h2(Windows::GENEROUS).await?);
    }
    let mut readers = Vec::new();
    for i in 0..WATCHERS {
        let mut lines = watch(
            &conns[i % CONNECTIONS],
            &format!("resourceVersion={start}&allowWatchBookmarks=true"),
        )
        .await?;
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(CHANGES);
            while got.len() < CHANGES {
                got.push(next_event(&mut lines).await?);
            }
            anyhow::Ok(got)
        }));
    }
    // (type, name, resourceVersion; unknown for deletions, which answer a Status)
    let mut want: Vec<(String, String, Option<i64>)> = Vec::new();
    let mut i = 0;
    while want.len() < CHANGES {
        let name = format!("w{}", i % 7);
        let exists = want
            .iter()
            .rev()
            .find(|(_, n, _)| *n == name)
            .is_some_and(|(t, _, _)| t != "DELETED");
        let (ty, rv) = match (exists, i % 3) {
            (false, _) => (
                "ADDED",
                Some(rv_of(&create(&writer, &cm(&name, json!({}), "0")).await?)),
            ),
            (true, 0) => {
                delete(&writer, &name).await?;
                ("DELETED", None)
            }
            (true, _) => (
                "MODIFIED",
                Some(rv_of(
                    &patch(&writer, &name, &json!({"data": {"k": i.to_string()}})).await?,
                )),
            ),
        };
        want.push((ty.to_string(), name, rv));
        i += 1;
    }
    let mut first: Option<Vec<(String, String, i64)>> = None;
    for (n, r) in readers.into_iter().enumerate() {
        let got = tokio::time::timeout(WAIT, r)
            .await
            .map_err(|_| anyhow::anyhow!("watcher {n} did not get {CHANGES} events in time"))???;
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, &g.1), (&w.0, &w.1), "watcher {n}: {got:?}");
            if let Some(rv) = w.2 {
                assert_eq!(g.2, rv, "watcher {n}");
            }
        }
        assert!(
            got.windows(2).all(|p| p[0].2 < p[1].2),
            "watcher {n}: resourceVersions increase"
        );
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(&got, f, "watcher {n} differs from watcher 0"),
        }
    }
    Ok(())
}
