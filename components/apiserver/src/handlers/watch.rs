//! WATCH: a stream of `{"type": …, "object": …}` lines following etcd's event
//! history from a resourceVersion, filtered by selectors with Kubernetes'
//! transition rules (an object leaving the selection is seen as DELETED).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use kadm_apimachinery::{ApiError, ResourceInfo, meta, table};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::read::{Filter, parse_rv};
use super::{Ctx, to_wire};
use crate::response::{Body, Format};
use crate::storage::{Change, change_from_event};

/// How often a watch that asked for bookmarks gets one when nothing else happens.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// Events buffered per watcher before the etcd side waits for the client.
const WATCH_BUFFER: usize = 256;

struct Encoder {
    res: &'static ResourceInfo,
    format: Format,
    include: table::IncludeObject,
}

impl Encoder {
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
            _ => obj,
        };
        let mut line =
            serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata});
        let mut line =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn error(e: &ApiError) -> Bytes {
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()}))
            .unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}

/// The watch event (type, object) a change produces for a filter, if any.
fn translate(change: Change, filter: &Filter) -> Option<(&'static str, Value)> {
    match change {
        Change::Put {
            current,
            previous,
            created,
        } => {
            let now = filter.matches(&current.object);
            let before = !created && previous.as_ref().is_some_and(|p| filter.matches(&p.object));
            match (before, now) {
                (false, true) => Some(("ADDED", current.object)),
                (true, true) => Some(("MODIFIED", current.object)),
                (true, false) => Some(("DELETED", current.object)),
                (false, false) => None,
            }
        }
        Change::Delete { previous, .. } => filter
            .matches(&previous.object)
            .then_some(("DELETED", previous.object)),
    }
}

pub async fn watch(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(ctx)?;
    let rv = parse_rv(ctx.query.str("resourceVersion"))?;
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
    if ctx
        .query
        .get("sendInitialEvents")
        .is_some_and(|v| v == "true")
        && !bookmarks
    {
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
    let enc = Encoder {
        res: ctx.res(),
        format: ctx.format,
        include,
    };
    let prefix = ctx.key("");
    let store = ctx.state.store.clone();

    // Initial state: synthetic ADDED events for what exists now, then changes after it.
    let mut initial = Vec::new();
    let start_rev = if send_initial {
        let page = store.list(&prefix, None, 0, 0).await?;
        for item in page.items {
            if filter.matches(&item.object) {
                initial.push(enc.event("ADDED", item.object));
            }
        }
        page.revision
    } else {
        rv
    };
    let mut ws = store.watch(&prefix, start_rev + 1).await?;
    // etcd answers a watch on a compacted revision with an immediate cancel: turn that into 410.
    let first = ws
        .message()
        .await
        .map_err(|e| ApiError::internal(format!("etcd watch: {e}")))?;
    let mut pending = Vec::new();
    if let Some(resp) = first {
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                return Err(ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    resp.compact_revision()
                )));
            }
            return Err(ApiError::internal(format!(
                "etcd cancelled the watch: {}",
                resp.cancel_reason()
            )));
        }
        pending.push(resp);
    }

    let (tx, rx) = mpsc::channel::<Bytes>(WATCH_BUFFER);
    tokio::spawn(async move {
        let mut last_rev = start_rev;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(enc.bookmark(start_rev, true)).await.is_err() {
            return;
        }
        let (mut sender, mut stream) = ws.split();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        let mut pending = pending.into_iter();
        loop {
            let resp = if let Some(p) = pending.next() {
                p
            } else {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = tx.closed() => break,
                    _ = tick.tick(), if bookmarks => {
                        if sender.request_progress().await.is_err() { break; }
                        continue;
                    }
                    msg = stream.message() => match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Encoder::error(&ApiError::internal(format!("etcd watch: {e}")))).await;
                            break;
                        }
                    }
                }
            };
            if resp.canceled() {
                let err = if resp.compact_revision() > 0 {
                    ApiError::expired(format!(
                        "too old resource version: {last_rev} ({})",
                        resp.compact_revision()
                    ))
                } else {
                    ApiError::internal(format!(
                        "etcd cancelled the watch: {}",
                        resp.cancel_reason()
                    ))
                };
                let _ = tx.send(Encoder::error(&err)).await;
                break;
            }
            let header_rev = resp.header().map_or(last_rev, |h| h.revision());
            if resp.events().is_empty() {
                // Created notice or progress notification: everything up to header_rev is delivered.
                if bookmarks && !resp.created() && header_rev > last_rev {
                    last_rev = header_rev;
                    if tx.send(enc.bookmark(last_rev, false)).await.is_err() {
                        break;
                    }
                }
                continue;
            }
            for ev in resp.events() {
                let change = match change_from_event(ev, header_rev) {
                    Ok(Some(c)) => c,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping undecodable object in watch");
                        continue;
                    }
                };
                let rev = match &change {
                    Change::Put { current, .. } => current.mod_revision,
                    Change::Delete { revision, .. } => *revision,
                };
                last_rev = last_rev.max(rev);
                if let Some((ty, obj)) = translate(change, &filter)
                    && tx.send(enc.event(ty, obj)).await.is_err()
                {
                    return;
                }
            }
        }
    });

    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok(Frame::data(b))),
    );
    let mut r = Response::new(BodyExt::boxed(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Stored;
    use kadm_apimachinery::selector::{FieldSelector, LabelSelector};

    fn stored(labels: Value) -> Stored {
        Stored {
            key: "k".into(),
            object: json!({"metadata": {"name": "a", "labels": labels}}),
            mod_revision: 2,
        }
    }

    #[test]
    fn leaving_the_selection_is_a_delete() {
        let filter = Filter {
            label: LabelSelector::parse("app=web").expect("sel"),
            field: FieldSelector::everything(),
        };
        let change = Change::Put {
            current: stored(json!({"app": "db"})),
            previous: Some(stored(json!({"app": "web"}))),
            created: false,
        };
        assert_eq!(translate(change, &filter).map(|(t, _)| t), Some("DELETED"));
        let entering = Change::Put {
            current: stored(json!({"app": "web"})),
            previous: Some(stored(json!({"app": "db"}))),
            created: false,
        };
        assert_eq!(translate(entering, &filter).map(|(t, _)| t), Some("ADDED"));
        let unrelated = Change::Put {
            current: stored(json!({})),
            previous: None,
            created: true,
        };
        assert!(translate(unrelated, &filter).is_none());
    }
}
