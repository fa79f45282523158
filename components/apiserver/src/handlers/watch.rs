//! WATCH: a stream of `{"type": …, "object": …}` lines served from the watch cache
//! (see `crate::cache`), filtered by selectors with Kubernetes' transition rules (an
//! object leaving the selection is seen as DELETED).
//!
//! Each watcher is a task that takes changes from its resource's broadcast, filters them
//! and puts them in the watcher's bounded queue, from which the response body is written.
//! Events carry the object bytes the cache encoded once; a line is assembled only when
//! the body is written. A watcher that falls behind — its queue full, or a whole
//! broadcast behind — is closed, as Kubernetes closes slow watchers: its client
//! re-watches from the last resourceVersion it saw.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use kadm_apimachinery::{ApiError, Reason, ResourceInfo, meta, table};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::read::{Filter, parse_rv, too_large_resource_version};
use super::{Ctx, to_wire};
use crate::cache::{Cacher, Entry, Event, EventType, FRESHNESS_TIMEOUT, TooOld, WatchFrom};
use crate::response::{Body, Format};

/// How often a watch that asked for bookmarks gets one when nothing else happens.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// How long a watch waits for the cache to load (at start-up) before answering 429.
const CACHE_READY_WAIT: Duration = Duration::from_secs(10);
/// Bytes written to the response per body frame at most (lines are batched up to it).
const FRAME_BYTES: usize = 64 * 1024;

/// One line of a watch stream, before it is written.
enum Line {
    /// An event whose object is the cache's shared encoding.
    Shared(EventType, Bytes),
    /// A `PartialObjectMetadata` event: the item head, then the cache's shared
    /// encoding of the object's metadata.
    Partial(EventType, &'static [u8], Bytes),
    /// A line encoded for this watcher alone (tables, bookmarks, errors, other kinds).
    Own(Bytes),
}

impl Line {
    fn write(&self, buf: &mut BytesMut) {
        match self {
            Line::Shared(ty, obj) => {
                buf.extend_from_slice(b"{\"type\":\"");
                buf.extend_from_slice(ty.as_str().as_bytes());
                buf.extend_from_slice(b"\",\"object\":");
                buf.extend_from_slice(obj);
                buf.extend_from_slice(b"}\n");
            }
            Line::Partial(ty, head, metadata) => {
                buf.extend_from_slice(b"{\"type\":\"");
                buf.extend_from_slice(ty.as_str().as_bytes());
                buf.extend_from_slice(b"\",\"object\":");
                buf.extend_from_slice(head);
                buf.extend_from_slice(metadata);
                buf.extend_from_slice(b"}}\n");
            }
            Line::Own(b) => buf.extend_from_slice(b),
        }
    }
}

struct Encoder {
    res: &'static ResourceInfo,
    format: Format,
    include: table::IncludeObject,
    /// Whether the cache's bytes are what this watcher sends (JSON of the prefix's
    /// primary resource).
    shared: bool,
}

impl Encoder {
    fn line(&self, ty: EventType, e: &Entry) -> Line {
        if let Format::Partial(p) = self.format {
            return Line::Partial(ty, p.item_head(), e.metadata().clone());
        }
        if self.shared {
            return Line::Shared(ty, e.json.clone());
        }
        Line::Own(self.event(ty.as_str(), e.value()))
    }

    fn event(&self, ty: &str, obj: Value) -> Bytes {
        let obj = to_wire(self.res, obj);
        let object = match self.format {
            Format::Table => table::to_table(
                self.res,
                std::slice::from_ref(&obj),
                json!({"resourceVersion": meta::resource_version(&obj)}),
                self.include,
                true,
            ),
            Format::Partial(p) => p.object(&obj),
            Format::Json | Format::Yaml => obj,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Line {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = match self.format {
            Format::Partial(p) => ("PartialObjectMetadata", p.api_version().to_string()),
            _ => (self.res.kind, self.res.api_version()),
        };
        let obj = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Line::Own(Bytes::from(line))
    }

    fn error(e: &ApiError) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// The watch event type a change produces for a filter, if any: entering the selection
/// is ADDED, leaving it is DELETED (with the object as it is now), as in Kubernetes.
fn translate(change: &Event, filter: &Filter, cacher: &Cacher) -> Option<EventType> {
    let matches = |e: &Entry| filter.matches_entry(cacher, e);
    match change.kind {
        EventType::Added | EventType::Modified => {
            let now = matches(&change.object);
            let before =
                change.kind == EventType::Modified && change.prev.as_deref().is_some_and(matches);
            match (before, now) {
                (false, true) => Some(EventType::Added),
                (true, true) => Some(EventType::Modified),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
        EventType::Deleted => matches(&change.object).then_some(EventType::Deleted),
    }
}

fn stream_response(rx: mpsc::Receiver<Line>) -> Response<Body> {
    let mut rx = rx;
    // Every line queued when the body is polled goes out in one frame (one TLS record
    // run, one write) instead of one frame per line.
    let frames = futures::stream::poll_fn(move |cx| match rx.poll_recv(cx) {
        Poll::Ready(Some(first)) => {
            let mut buf = BytesMut::new();
            first.write(&mut buf);
            while buf.len() < FRAME_BYTES {
                match rx.try_recv() {
                    Ok(l) => l.write(&mut buf),
                    Err(_) => break,
                }
            }
            Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
        }
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// A watch that ends at once with one ERROR event (how Kubernetes answers a watch it
/// cannot start from the requested resourceVersion).
fn error_stream(e: &ApiError) -> Response<Body> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Line::Own(Encoder::error(e)));
    stream_response(rx)
}

pub async fn watch(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(ctx)?;
    let rv_param = ctx.query.str("resourceVersion");
    let rv = parse_rv(rv_param)?;
    let timeout = match ctx.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // Kubernetes spreads default watch lifetimes over [30m, 60m) so clients do not re-list in lockstep.
        _ => Duration::from_secs(1800 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 7),
    };
    let bookmarks = ctx.query.bool("allowWatchBookmarks");
    let send_initial = match ctx.query.get("sendInitialEvents") {
        Some(v) => matches!(v, "true" | "1"),
        None => rv == 0,
    };
    let explicit_initial = ctx
        .query
        .get("sendInitialEvents")
        .is_some_and(|v| v == "true");
    if explicit_initial && !bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![kadm_apimachinery::Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires allowWatchBookmarks=true",
            )],
        ));
    }
    let include = table::IncludeObject::parse(ctx.query.str("includeObject")).ok_or_else(|| {
        ApiError::bad_request("includeObject must be one of None, Metadata, Object")
    })?;
    // Watch events carry single objects. (Kubernetes starts such a watch and ends it at
    // the first event, which it cannot encode; refusing it up front tells the client why.)
    if let Format::Partial(p) = ctx.format {
        p.check(ctx.res(), false)?;
    }
    let cache = ctx.state.cache.clone();
    let cacher = cache
        .cacher(ctx.res())
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("no watch cache for {}", ctx.res().plural)))?;
    if !cache.wait_ready(CACHE_READY_WAIT).await {
        let mut e = ApiError::new(
            429,
            Reason::TooManyRequests,
            "storage is (re)initializing: the watch cache is not loaded yet",
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    let enc = Encoder {
        res: ctx.res(),
        format: ctx.format,
        include,
        shared: matches!(ctx.format, Format::Json | Format::Yaml)
            && cacher.layout.is_primary(ctx.res()),
    };

    // The initial state is as fresh as the request asks: a consistent read for
    // sendInitialEvents without a resourceVersion, not older than N for N, any for "0"
    // and for the legacy "" without sendInitialEvents.
    let from = if send_initial {
        let min = if rv > 0 {
            rv
        } else if rv_param.is_empty() && explicit_initial {
            cache
                .etcd_revision()
                .await
                .map_err(crate::storage::StoreError::from)?
        } else {
            0
        };
        if min > 0
            && let Err(current) = cache.wait_for(min, FRESHNESS_TIMEOUT).await
        {
            return Err(too_large_resource_version(min, current));
        }
        WatchFrom::Now
    } else if rv == 0 {
        // sendInitialEvents=false without a resourceVersion: from the most recent.
        WatchFrom::Latest
    } else {
        WatchFrom::After(rv)
    };
    let scope = ctx.key("");
    let start = match cacher.watch(&scope, from) {
        Ok(s) => s,
        Err(TooOld { requested, oldest }) => {
            return Ok(error_stream(&ApiError::expired(format!(
                "too old resource version: {requested} ({oldest})"
            ))));
        }
    };

    let (tx, rx) = mpsc::channel::<Line>(cache.config.queue.max(1));
    let w = Watcher {
        cacher,
        filter,
        scope,
        enc,
        out: tx,
        floor: start.rev,
        last_rev: start.rev,
        bookmarks,
    };
    tokio::spawn(w.run(start, send_initial, timeout));
    Ok(stream_response(rx))
}

struct Watcher {
    cacher: Arc<Cacher>,
    filter: Filter,
    scope: String,
    enc: Encoder,
    out: mpsc::Sender<Line>,
    /// Changes at or below this revision are part of the start (state or history).
    floor: i64,
    /// Every change of the scope up to this revision has been handled.
    last_rev: i64,
    bookmarks: bool,
}

/// Why a watcher stops.
enum End {
    /// The client went away, the deadline passed, or the cache re-listed.
    Done,
    /// The watcher did not keep up.
    Slow(&'static str),
}

impl Watcher {
    async fn run(mut self, start: crate::cache::WatchStart, send_initial: bool, timeout: Duration) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut live = start.live;
        // Initial state and replayed history go at the client's pace.
        let mut backlog: Vec<Line> = Vec::new();
        for e in &start.initial {
            if self.filter.matches_entry(&self.cacher, e) {
                backlog.push(self.enc.line(EventType::Added, e));
            }
        }
        if send_initial && self.bookmarks {
            backlog.push(self.enc.bookmark(start.rev, true));
        }
        for ev in &start.replay {
            if let Some(l) = self.accept(ev) {
                backlog.push(l);
            }
        }
        drop(start.initial);
        drop(start.replay);
        for line in backlog {
            tokio::select! {
                _ = &mut deadline => return,
                r = self.out.send(line) => if r.is_err() { return },
            }
        }

        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        let end = loop {
            tokio::select! {
                _ = &mut deadline => break End::Done,
                _ = self.out.closed() => break End::Done,
                _ = tick.tick(), if self.bookmarks => {
                    if let Err(e) = self.bookmark(&mut live) { break e; }
                }
                r = live.recv() => match r {
                    Ok(ev) => if let Err(e) = self.forward(&ev) { break e; },
                    Err(broadcast::error::RecvError::Lagged(_)) => break End::Slow("fell a whole broadcast behind"),
                    Err(broadcast::error::RecvError::Closed) => break End::Done,
                },
            }
        };
        self.closed(end);
    }

    /// A bookmark at the cache's revision. Every change up to that revision was
    /// broadcast before the revision became visible, so what is queued is taken first
    /// and the bookmark cannot overtake an event.
    fn bookmark(&mut self, live: &mut broadcast::Receiver<Arc<Event>>) -> Result<(), End> {
        let rev = self.cacher.current_rev();
        loop {
            match live.try_recv() {
                Ok(ev) => self.forward(&ev)?,
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    return Err(End::Slow("fell a whole broadcast behind"));
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(End::Done),
            }
        }
        if rev > self.last_rev {
            self.last_rev = rev;
            self.push(self.enc.bookmark(rev, false))?;
        }
        Ok(())
    }

    fn closed(&self, end: End) {
        if let End::Slow(why) = end {
            tracing::info!(resource = self.enc.res.plural, scope = %self.scope, last_rev = self.last_rev, why, "closing a watch that does not keep up; its client re-watches");
        }
    }

    /// The line a change produces for this watcher, if any (and notes its revision).
    fn accept(&mut self, ev: &Event) -> Option<Line> {
        if ev.rev() <= self.floor {
            return None;
        }
        self.last_rev = self.last_rev.max(ev.rev());
        if !ev.object.key.starts_with(self.scope.as_str()) {
            return None;
        }
        let ty = translate(ev, &self.filter, &self.cacher)?;
        Some(self.enc.line(ty, &ev.object))
    }

    fn forward(&mut self, ev: &Event) -> Result<(), End> {
        match self.accept(ev) {
            Some(line) => self.push(line),
            None => Ok(()),
        }
    }

    fn push(&self, line: Line) -> Result<(), End> {
        match self.out.try_send(line) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(End::Slow("its queue is full")),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Layout;
    use kadm_apimachinery::selector::{FieldSelector, LabelSelector};
    use std::sync::atomic::AtomicI64;

    fn cacher() -> Cacher {
        let primary = kadm_apimachinery::registry::lookup("", "v1", "configmaps").expect("cm");
        Cacher::new(
            "/registry/configmaps/".into(),
            Layout {
                primary,
                fields: primary.supported_fields(),
            },
            8,
            Arc::new(AtomicI64::new(0)),
        )
    }

    fn entry(c: &Cacher, labels: Value, rev: i64) -> Arc<Entry> {
        Arc::new(
            c.layout
                .entry(
                    Arc::from("/registry/configmaps/default/a"),
                    rev,
                    json!({"metadata": {"name": "a", "namespace": "default", "labels": labels, "resourceVersion": rev.to_string()}}),
                )
                .expect("entry"),
        )
    }

    #[test]
    fn leaving_the_selection_is_a_delete() {
        let c = cacher();
        let filter = Filter {
            label: LabelSelector::parse("app=web").expect("sel"),
            field: FieldSelector::everything(),
        };
        let change = Event {
            kind: EventType::Modified,
            object: entry(&c, json!({"app": "db"}), 3),
            prev: Some(entry(&c, json!({"app": "web"}), 2)),
        };
        assert_eq!(translate(&change, &filter, &c), Some(EventType::Deleted));
        let entering = Event {
            kind: EventType::Modified,
            object: entry(&c, json!({"app": "web"}), 3),
            prev: Some(entry(&c, json!({"app": "db"}), 2)),
        };
        assert_eq!(translate(&entering, &filter, &c), Some(EventType::Added));
        let unrelated = Event {
            kind: EventType::Added,
            object: entry(&c, json!({}), 3),
            prev: None,
        };
        assert!(translate(&unrelated, &filter, &c).is_none());
        let gone = Event {
            kind: EventType::Deleted,
            object: entry(&c, json!({"app": "web"}), 4),
            prev: Some(entry(&c, json!({"app": "web"}), 3)),
        };
        assert_eq!(translate(&gone, &filter, &c), Some(EventType::Deleted));
    }

    #[test]
    fn shared_lines_are_the_kubernetes_watch_event_json() {
        let c = cacher();
        let e = entry(&c, json!({"a": "b"}), 7);
        let mut buf = BytesMut::new();
        Line::Shared(EventType::Modified, e.json.clone()).write(&mut buf);
        assert!(buf.ends_with(b"}\n"));
        let v: Value = serde_json::from_slice(&buf).expect("json line");
        assert_eq!(v["type"], "MODIFIED");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "7");
        assert_eq!(v["object"]["kind"], "ConfigMap");
    }

    #[test]
    fn metadata_watchers_get_partial_object_metadata_events_and_bookmarks() {
        let c = cacher();
        let e = entry(&c, json!({"a": "b"}), 7);
        let enc = Encoder {
            res: c.layout.primary,
            format: Format::Partial(crate::response::Partial {
                list: false,
                v1beta1: false,
                yaml: false,
            }),
            include: table::IncludeObject::default(),
            shared: false,
        };
        let mut buf = BytesMut::new();
        enc.line(EventType::Deleted, &e).write(&mut buf);
        enc.bookmark(9, true).write(&mut buf);
        let lines: Vec<Value> = buf
            .as_ref()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "DELETED");
        assert_eq!(
            lines[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "namespace": "default", "labels": {"a": "b"}, "resourceVersion": "7"}})
        );
        assert_eq!(lines[1]["type"], "BOOKMARK");
        assert_eq!(lines[1]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(lines[1]["object"]["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(lines[1]["object"]["metadata"]["resourceVersion"], "9");
        assert_eq!(
            lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    }
}
