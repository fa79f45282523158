//! Server-side printing: `meta.k8s.io/v1 Table` responses, which is what `kubectl get`
//! renders. Every served resource has the columns Kubernetes' printers give it
//! ([`columns`]) and cells computed the same way ([`cells`]); resources Kubernetes has no
//! printer for (Roles, ClusterRoles) get its default `Name` / `Created At` table. As in
//! Kubernetes, rows always carry the wide (`-o wide`) cells; kubectl hides the columns of
//! priority 1 unless asked for them.

mod cells;
mod columns;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::registry::ResourceInfo;

pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// The `columnDefinitions` of `res`'s Table.
pub fn column_definitions(res: &ResourceInfo) -> Vec<Value> {
    columns::columns(res)
        .into_iter()
        .map(columns::Column::to_json)
        .collect()
}

/// The cells of `obj`'s row as of `now` (one per [`column_definitions`] entry).
pub fn row_cells(res: &ResourceInfo, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    cells::cells(res, obj, now)
}

/// A row of `cells` carrying as much of `obj` as `include` asks for.
fn row_of(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
    }
    r
}

fn row(res: &ResourceInfo, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let mut r = row_of(cells::cells(res, obj, now), obj, include);
    if let Some(conditions) = cells::row_conditions(res, obj) {
        r["conditions"] = conditions;
    }
    r
}

/// A Table of `objects` with list metadata (`resourceVersion`, `continue`);
/// `with_columns: false` leaves `columnDefinitions` empty (`TableOptions.noHeaders`).
pub fn to_table(
    res: &ResourceInfo,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = Utc::now();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_columns { column_definitions(res) } else { Vec::new() },
        "rows": objects.iter().map(|o| row(res, o, include, now)).collect::<Vec<_>>(),
    })
}

/// A one-row Table of an autoscaling/v1 Scale (`GET …/scale` asked for as a Table).
pub fn scale_to_table(scale: &Value, include: IncludeObject) -> Value {
    let r = row_of(cells::scale(scale, Utc::now()), scale, include);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": scale.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))},
        "columnDefinitions": columns::scale_columns().into_iter().map(columns::Column::to_json).collect::<Vec<_>>(),
        "rows": [r],
    })
}

#[cfg(test)]
mod tests;
