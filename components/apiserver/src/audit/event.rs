//! One audit record: Kubernetes' `audit.k8s.io/v1` `Event`, field for field and in
//! Kubernetes' field order, so tools written for Kubernetes' audit logs read kadm's.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::policy::{Level, Stage};
use crate::tls::UserInfo;

/// `metav1.MicroTime`: RFC 3339 in UTC with microseconds (`2024-05-01T10:00:00.123456Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroTime(pub DateTime<Utc>);

impl MicroTime {
    pub fn now() -> MicroTime {
        MicroTime(Utc::now())
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

/// `authentication/v1.UserInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct User {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for User {
    fn from(u: &UserInfo) -> User {
        User {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// The object a resource request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

/// The `metav1.Status` an event carries: the code always; status, message, reason and
/// details when the response was a `Status` (errors). `metadata` is always `{}`, as Go
/// prints the empty ListMeta.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseStatus {
    pub metadata: Map<String, Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

fn is_zero(c: &u16) -> bool {
    *c == 0
}

impl ResponseStatus {
    pub fn code(code: u16) -> ResponseStatus {
        ResponseStatus {
            code,
            ..ResponseStatus::default()
        }
    }

    /// Copies the bounded fields of a `Status` body (Kubernetes' `LogResponseObject`).
    pub fn from_status(code: u16, status: &Value) -> ResponseStatus {
        let s = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ResponseStatus {
            metadata: Map::new(),
            status: s("status"),
            message: s("message"),
            reason: s("reason"),
            details: status.get("details").filter(|d| !d.is_null()).cloned(),
            code,
        }
    }
}

pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

/// `audit.k8s.io/v1` `Event`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<User>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    pub request_received_timestamp: MicroTime,
    pub stage_timestamp: MicroTime,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Event {
    /// An event for a request received at `received`, before anything is known of its
    /// user or its outcome.
    pub fn new(audit_id: String, request_uri: String, verb: String, received: MicroTime) -> Event {
        Event {
            kind: "Event",
            api_version: super::policy::API_VERSION,
            level: Level::Metadata,
            audit_id,
            stage: Stage::RequestReceived,
            request_uri,
            verb,
            user: User::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        }
    }

    /// The JSON line written to the log.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Drops `metadata.managedFields` from an object, from each item of a list, and from
/// each row object of a Table (`omitManagedFields`).
pub fn strip_managed_fields(v: &mut Value) {
    let strip = |o: &mut Value| {
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
    };
    strip(v);
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip);
    }
    if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(o) = row.get_mut("object") {
                strip(o);
            }
        }
    }
}

/// A body as JSON by its media type (JSON, YAML, Kubernetes protobuf); `None` for
/// anything else or a body that does not decode.
pub fn decode(content_type: &str, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => serde_yaml::from_slice(body).ok(),
        kadm_apimachinery::protobuf::MEDIA_TYPE => kadm_apimachinery::protobuf::decode(body).ok(),
        m if m.is_empty() || m == "*/*" || m.ends_with("json") => serde_json::from_slice(body).ok(),
        _ => None,
    }
}

/// Kubernetes' source IPs: the `X-Forwarded-For` entries, then `X-Real-Ip` unless already
/// listed, then the connection's address unless it is the last one listed.
pub fn source_ips(headers: &http::HeaderMap, peer: Option<std::net::IpAddr>) -> Vec<String> {
    let mut ips: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string())
        .collect();
    if let Some(real) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_string())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    if let Some(peer) = peer.map(|p| p.to_string())
        && ips.last() != Some(&peer)
    {
        ips.push(peer);
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn events_serialize_with_kubernetes_field_names_and_order() {
        let t = MicroTime(
            Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456),
        );
        let mut ev = Event::new(
            "0b5a3c43-1c37-4c8b-9d5e-3b0ac2f0a6a1".into(),
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into(),
            "create".into(),
            t,
        );
        ev.stage = Stage::ResponseComplete;
        ev.user = User {
            username: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..User::default()
        };
        ev.source_ips = vec!["127.0.0.1".into()];
        ev.user_agent = "kubectl/v1.33.0".into();
        ev.object_ref = Some(ObjectRef {
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: "c".into(),
            api_version: "v1".into(),
            ..ObjectRef::default()
        });
        ev.response_status = Some(ResponseStatus::code(201));
        ev.stage_timestamp = MicroTime(t.0 + chrono::Duration::microseconds(7));
        ev.annotations
            .insert(DECISION_ANNOTATION.into(), "allow".into());
        ev.annotations.insert(REASON_ANNOTATION.into(), "".into());
        let line = String::from_utf8(ev.to_line()).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","#,
                r#""auditID":"0b5a3c43-1c37-4c8b-9d5e-3b0ac2f0a6a1","stage":"ResponseComplete","#,
                r#""requestURI":"/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create","#,
                r#""verb":"create","user":{"username":"kubernetes-admin","groups":["system:masters","system:authenticated"]},"#,
                r#""sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.33.0","#,
                r#""objectRef":{"resource":"configmaps","namespace":"default","name":"c","apiVersion":"v1"},"#,
                r#""responseStatus":{"metadata":{},"code":201},"#,
                r#""requestReceivedTimestamp":"2024-05-01T10:00:00.123456Z","#,
                r#""stageTimestamp":"2024-05-01T10:00:00.123463Z","#,
                r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn error_statuses_keep_kubernetes_bounded_fields() {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps is forbidden: User \"jane\" cannot list resource",
            "reason": "Forbidden", "details": {"kind": "configmaps"}, "code": 403
        });
        let v = serde_json::to_value(ResponseStatus::from_status(403, &body)).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {}, "status": "Failure",
                   "message": "configmaps is forbidden: User \"jane\" cannot list resource",
                   "reason": "Forbidden", "details": {"kind": "configmaps"}, "code": 403})
        );
    }

    #[test]
    fn managed_fields_are_dropped_from_objects_lists_and_tables() {
        let mf = json!([{"manager": "kubectl"}]);
        let mut obj = json!({"metadata": {"name": "a", "managedFields": mf}});
        strip_managed_fields(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
        let mut list = json!({"items": [{"metadata": {"managedFields": mf}}]});
        strip_managed_fields(&mut list);
        assert_eq!(list, json!({"items": [{"metadata": {}}]}));
        let mut table = json!({"rows": [{"object": {"metadata": {"managedFields": mf}}}]});
        strip_managed_fields(&mut table);
        assert_eq!(table, json!({"rows": [{"object": {"metadata": {}}}]}));
    }

    #[test]
    fn source_ips_follow_kubernetes_order_without_repeats() {
        let mut h = http::HeaderMap::new();
        let peer = Some("10.0.0.9".parse().unwrap());
        assert_eq!(source_ips(&h, peer), vec!["10.0.0.9"]);
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.9".parse().unwrap());
        h.insert("x-real-ip", "1.2.3.4".parse().unwrap());
        assert_eq!(source_ips(&h, peer), vec!["1.2.3.4", "10.0.0.9"]);
    }

    #[test]
    fn bodies_decode_by_media_type() {
        assert_eq!(
            decode("application/json; charset=utf-8", br#"{"a":1}"#),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            decode("application/apply-patch+yaml", b"a: 1\n"),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            decode(
                "application/json-patch+json",
                br#"[{"op":"remove","path":"/a"}]"#
            ),
            Some(json!([{"op": "remove", "path": "/a"}]))
        );
        assert_eq!(decode("text/plain", b"x"), None);
        assert_eq!(decode("application/json", b"{"), None);
    }
}
