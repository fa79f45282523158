//! Metadata-only responses: Kubernetes' `PartialObjectMetadata` and
//! `PartialObjectMetadataList` (meta.k8s.io/v1 and v1beta1).
//!
//! Clients that only need names, labels, owners and finalizers — the garbage collector
//! and namespace controller's metadata informers, kube-runtime's `Controller::owns` —
//! ask for them with `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`
//! (`…List` for lists) and so do not pay for the objects' specs. Every served resource
//! supports them, for every verb, as in Kubernetes; the kind asked for must fit the
//! answer (a list, or one object), else 406.
//!
//! The watch cache keeps each object's JSON once; the metadata-only form of an entry is
//! a view of the same bytes ([`metadata_bytes`]), found the first time a metadata
//! request needs it, and every item is `head + metadata + "}"`.

use bytes::Bytes;
use kadm_apimachinery::{ApiError, Reason, ResourceInfo};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// A metadata-only rendering the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// `PartialObjectMetadataList` was asked for (else `PartialObjectMetadata`).
    pub list: bool,
    /// meta.k8s.io/v1beta1 (else v1).
    pub v1beta1: bool,
    /// YAML instead of JSON.
    pub yaml: bool,
}

const HEAD_V1: &[u8] =
    br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#;
const HEAD_V1BETA1: &[u8] =
    br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1beta1","metadata":"#;

impl Partial {
    pub fn api_version(self) -> &'static str {
        if self.v1beta1 {
            "meta.k8s.io/v1beta1"
        } else {
            "meta.k8s.io/v1"
        }
    }

    /// The JSON of one item up to its metadata: an item is `head + metadata + "}"`.
    pub fn item_head(self) -> &'static [u8] {
        if self.v1beta1 { HEAD_V1BETA1 } else { HEAD_V1 }
    }

    /// Kubernetes' 406 when the kind asked for does not fit the answer: a list where one
    /// object was asked for, or the reverse (Kubernetes negotiates the kind before it
    /// knows which one the verb returns).
    pub fn check(self, res: &ResourceInfo, answer_is_list: bool) -> Result<(), ApiError> {
        if self.list == answer_is_list {
            return Ok(());
        }
        self.check_type(answer_is_list, &go_type(res, answer_is_list))
    }

    /// [`Partial::check`] for an answer that is not one of the resource's own kinds;
    /// `go_type` is the answer's Go type as Kubernetes names it (`*autoscaling.Scale`).
    pub fn check_type(self, answer_is_list: bool, go_type: &str) -> Result<(), ApiError> {
        let message = match (self.list, answer_is_list) {
            (true, false) => format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({go_type})"
            ),
            (false, true) => format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({go_type})"
            ),
            _ => return Ok(()),
        };
        Err(ApiError::new(406, Reason::NotAcceptable, message))
    }

    /// `PartialObjectMetadata` of an object (in its client form).
    pub fn object(self, obj: &Value) -> Value {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": self.api_version(),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// `PartialObjectMetadataList` of a list's items, with the list's metadata
    /// (`resourceVersion`, `continue`, `remainingItemCount`).
    pub fn list_of(self, list_meta: Value, items: &[Value]) -> Value {
        json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": self.api_version(),
            "metadata": list_meta,
            "items": items.iter().map(|o| self.object(o)).collect::<Vec<_>>(),
        })
    }
}

/// The Go type Kubernetes names in its 406 messages: the internal type its storage
/// returns (`*core.ConfigMap`, `*apps.DeploymentList`; events.k8s.io Events are core
/// Events there too).
fn go_type(res: &ResourceInfo, list: bool) -> String {
    let package = match res.group {
        "" | "events.k8s.io" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    let suffix = if list { "List" } else { "" };
    format!("*{package}.{}{suffix}", res.kind)
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

/// The `metadata` value of an encoded object, as a view of the same allocation (no copy);
/// `{}` for an object without metadata (Kubernetes' empty ObjectMeta).
pub fn metadata_bytes(json: &Bytes) -> Bytes {
    match serde_json::from_slice::<Top>(json) {
        Ok(Top {
            metadata: Some(raw),
        }) => json.slice_ref(raw.get().as_bytes()),
        _ => Bytes::from_static(b"{}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        kadm_apimachinery::registry::lookup(group, version, plural).expect("resource")
    }

    #[test]
    fn metadata_bytes_are_a_view_of_the_object_and_items_are_valid_json() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"x": "}\"{"}, "resourceVersion": "5"},
            "data": {"metadata": "not this one"}});
        let bytes = Bytes::from(serde_json::to_vec(&obj).expect("json"));
        let m = metadata_bytes(&bytes);
        let start = m.as_ptr() as usize - bytes.as_ptr() as usize;
        assert!(start + m.len() <= bytes.len(), "a view into the object");
        let p = Partial {
            list: false,
            v1beta1: false,
            yaml: false,
        };
        let mut item = p.item_head().to_vec();
        item.extend_from_slice(&m);
        item.push(b'}');
        let v: Value = serde_json::from_slice(&item).expect("item json");
        assert_eq!(v, p.object(&obj));
        assert_eq!(v["kind"], "PartialObjectMetadata");
        assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(v["metadata"]["labels"]["x"], "}\"{");
        assert!(v.get("data").is_none());
        assert_eq!(
            &metadata_bytes(&Bytes::from_static(b"{\"a\":1}"))[..],
            b"{}"
        );
    }

    #[test]
    fn v1beta1_items_carry_their_version() {
        let p = Partial {
            list: true,
            v1beta1: true,
            yaml: false,
        };
        let l = p.list_of(
            json!({"resourceVersion": "9", "continue": "c", "remainingItemCount": 2}),
            &[json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {}})],
        );
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(l["metadata"]["remainingItemCount"], 2);
        assert_eq!(l["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(l["items"][0]["metadata"]["name"], "p");
        assert!(l["items"][0].get("spec").is_none());
        let head = std::str::from_utf8(p.item_head()).expect("utf8");
        assert!(head.contains("\"meta.k8s.io/v1beta1\""));
    }

    #[test]
    fn a_kind_that_does_not_fit_the_answer_is_kubernetes_406() {
        let object = Partial {
            list: false,
            v1beta1: false,
            yaml: false,
        };
        let list = Partial {
            list: true,
            ..object
        };
        let cm = res("", "v1", "configmaps");
        assert!(object.check(cm, false).is_ok());
        assert!(list.check(cm, true).is_ok());
        let e = object.check(cm, true).expect_err("list for an object");
        assert_eq!(e.code, 406);
        assert_eq!(e.reason, Reason::NotAcceptable);
        assert_eq!(
            e.message,
            "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
        );
        let deploy = res("apps", "v1", "deployments");
        assert_eq!(
            list.check(deploy, false)
                .expect_err("object for a list")
                .message,
            "you requested PartialObjectMetadataList, but the requested object is not a list (*apps.Deployment)"
        );
        let roles = res("rbac.authorization.k8s.io", "v1", "roles");
        assert!(
            list.check(roles, false)
                .expect_err("rbac")
                .message
                .ends_with("(*rbac.Role)")
        );
    }
}
