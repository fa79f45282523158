//! The OpenAPI documents kube-apiserver publishes, built from the definitions and the
//! resource registry:
//!
//! - `/openapi/v2`: one Swagger 2.0 document, `definitions` + `paths` of every served resource;
//! - `/openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<H>"}, …}}`;
//! - `/openapi/v3/<path>`: one OpenAPI 3.0 document per discovery path (`api`, `api/v1`, `apis`,
//!   `apis/<group>`, `apis/<group>/<version>`) with `paths` and `components.schemas`.
//!
//! Every write operation carries the `dryRun`, `fieldManager` and `fieldValidation` query
//! parameters (and `force` on PATCH), and every operation its `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind`: kubectl decides from the PATCH operation of a kind
//! whether the server validates fields itself (its QueryParamVerifier) and whether it takes
//! strategic merge patches.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{KUBERNETES_VERSION, definition, definitions, hash, ref_name};
use crate::registry::{self, ResourceInfo};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V2,
    V3,
}

impl Flavor {
    fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Flavor::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }
}

/// `Core`, `Apps`, `RbacAuthorization`, `Events`: the group as operation ids spell it.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `core_v1`, `apps_v1`, `rbacAuthorization_v1`: the operation tag.
fn tag(group: &str, version: &str) -> String {
    let g = group_camel(group);
    let mut c = g.chars();
    let lower: String = match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: String,
    required: bool,
}

fn q(name: &'static str, ty: &'static str, description: &str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description: description.to_string(),
        required: false,
    }
}

impl Param {
    fn render(&self, flavor: Flavor) -> Value {
        let mut p = Map::new();
        p.insert("name".into(), json!(self.name));
        p.insert("in".into(), json!(self.location));
        p.insert("description".into(), json!(self.description));
        if self.required {
            p.insert("required".into(), json!(true));
        }
        match flavor {
            Flavor::V2 => {
                p.insert("type".into(), json!(self.ty));
                p.insert("uniqueItems".into(), json!(true));
            }
            Flavor::V3 => {
                p.insert(
                    "schema".into(),
                    json!({"type": self.ty, "uniqueItems": true}),
                );
            }
        }
        Value::Object(p)
    }
}

fn pretty() -> Param {
    q(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    )
}

fn namespace_param() -> Param {
    Param {
        name: "namespace",
        location: "path",
        ty: "string",
        description: "object name and auth scope, such as for teams and projects".into(),
        required: true,
    }
}

fn name_param(kind: &str) -> Param {
    Param {
        name: "name",
        location: "path",
        ty: "string",
        description: format!("name of the {kind}"),
        required: true,
    }
}

fn dry_run() -> Param {
    q(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager(patch: bool) -> Param {
    let mut d = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.".to_string();
    if patch {
        d.push_str(" This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).");
    }
    Param {
        description: d,
        ..q("fieldManager", "string", "")
    }
}

fn field_validation() -> Param {
    q(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default when the parameter is not set. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    )
}

fn force() -> Param {
    q(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    )
}

fn list_params(watch_path: bool) -> Vec<Param> {
    let mut v = vec![
        q(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.",
        ),
        q(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue).",
        ),
        q(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        q(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        q(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
        ),
        q(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset",
        ),
        q(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset",
        ),
        q(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.",
        ),
        q(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        q(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
    ];
    if watch_path {
        v.push(pretty());
        v.sort_by_key(|p| p.name);
    }
    v
}

fn delete_params() -> Vec<Param> {
    vec![
        dry_run(),
        q(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
        ),
        q(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error.",
        ),
        q(
            "orphanDependents",
            "boolean",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
        ),
        q(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
        ),
    ]
}

/// What an operation's body is.
enum BodyKind {
    Object(String),
    Patch,
    Delete,
}

struct Op {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    params: Vec<Param>,
    body: Option<BodyKind>,
    /// (code, description, definition)
    responses: Vec<(&'static str, &'static str, Option<String>)>,
    gvk: Option<(String, String, String)>,
    watch: bool,
    tag: String,
}

struct PathItem {
    params: Vec<Param>,
    ops: Vec<Op>,
}

const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

impl Op {
    fn render(&self, flavor: Flavor) -> Value {
        let mut o = Map::new();
        o.insert("description".into(), json!(self.description));
        if flavor == Flavor::V2 {
            let consumes: Vec<&str> = match self.body {
                Some(BodyKind::Patch) => PATCH_TYPES.to_vec(),
                _ => vec!["*/*"],
            };
            o.insert("consumes".into(), json!(consumes));
            let produces: Vec<&str> = if self.watch || self.action == "list" {
                vec![
                    "application/json",
                    "application/yaml",
                    "application/json;stream=watch",
                ]
            } else {
                vec!["application/json", "application/yaml"]
            };
            o.insert("produces".into(), json!(produces));
            o.insert("schemes".into(), json!(["https"]));
        }
        o.insert("tags".into(), json!([self.tag]));
        o.insert("operationId".into(), json!(self.id));
        let mut params: Vec<Value> = Vec::new();
        if flavor == Flavor::V2 {
            match &self.body {
                Some(BodyKind::Object(def)) => params.push(json!({
                    "in": "body", "name": "body", "required": true, "schema": flavor.reference(def),
                })),
                Some(BodyKind::Patch) => params.push(json!({
                    "in": "body", "name": "body", "required": true,
                    "schema": flavor.reference(&format!("{META}.Patch")),
                })),
                Some(BodyKind::Delete) => params.push(json!({
                    "in": "body", "name": "body",
                    "schema": flavor.reference(&format!("{META}.DeleteOptions")),
                })),
                None => {}
            }
        }
        params.extend(self.params.iter().map(|p| p.render(flavor)));
        if !params.is_empty() {
            o.insert("parameters".into(), Value::Array(params));
        }
        if flavor == Flavor::V3 {
            let body = match &self.body {
                Some(BodyKind::Object(def)) => Some(
                    json!({"content": {"*/*": {"schema": flavor.reference(def)}}, "required": true}),
                ),
                Some(BodyKind::Patch) => {
                    let content: Map<String, Value> = PATCH_TYPES
                        .iter()
                        .map(|t| {
                            (
                                t.to_string(),
                                json!({"schema": flavor.reference(&format!("{META}.Patch"))}),
                            )
                        })
                        .collect();
                    Some(json!({"content": content, "required": true}))
                }
                Some(BodyKind::Delete) => Some(json!({"content": {"*/*": {
                    "schema": flavor.reference(&format!("{META}.DeleteOptions"))
                }}})),
                None => None,
            };
            if let Some(b) = body {
                o.insert("requestBody".into(), b);
            }
        }
        let mut responses = Map::new();
        for (code, description, def) in &self.responses {
            let mut r = Map::new();
            r.insert("description".into(), json!(description));
            if let Some(def) = def {
                match flavor {
                    Flavor::V2 => {
                        r.insert("schema".into(), flavor.reference(def));
                    }
                    Flavor::V3 => {
                        let types: &[&str] = if self.watch {
                            &[
                                "application/json",
                                "application/json;stream=watch",
                                "application/yaml",
                            ]
                        } else {
                            &["application/json", "application/yaml"]
                        };
                        let content: Map<String, Value> = types
                            .iter()
                            .map(|t| (t.to_string(), json!({"schema": flavor.reference(def)})))
                            .collect();
                        r.insert("content".into(), Value::Object(content));
                    }
                }
            }
            responses.insert(code.to_string(), Value::Object(r));
        }
        o.insert("responses".into(), Value::Object(responses));
        o.insert("x-kubernetes-action".into(), json!(self.action));
        if let Some((g, v, k)) = &self.gvk {
            o.insert(
                "x-kubernetes-group-version-kind".into(),
                json!({"group": g, "kind": k, "version": v}),
            );
        }
        Value::Object(o)
    }
}

impl PathItem {
    fn render(&self, flavor: Flavor) -> Value {
        let mut p = Map::new();
        for op in &self.ops {
            p.insert(op.method.into(), op.render(flavor));
        }
        if !self.params.is_empty() {
            p.insert(
                "parameters".into(),
                Value::Array(self.params.iter().map(|x| x.render(flavor)).collect()),
            );
        }
        Value::Object(p)
    }
}

fn unauthorized() -> (&'static str, &'static str, Option<String>) {
    ("401", "Unauthorized", None)
}

/// The (group, version, kind) a subresource reads and writes.
fn subresource_kind(res: &ResourceInfo, sub: &str) -> (String, String, String) {
    match sub {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into()),
        "binding" => (String::new(), "v1".into(), "Binding".into()),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
        ),
        _ => (res.group.into(), res.version.into(), res.kind.into()),
    }
}

fn def_of(group: &str, version: &str, kind: &str) -> String {
    super::gvk_definition(group, version, kind)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{META}.Status"))
}

/// Every path of one served resource, with its operations.
fn resource_paths(res: &ResourceInfo, out: &mut BTreeMap<String, PathItem>) {
    let prefix = format!("/{}", gv_path(res.group, res.version));
    let gv = format!("{}{}", group_camel(res.group), capitalize(res.version));
    let scope = if res.namespaced() { "Namespaced" } else { "" };
    let kind = res.kind;
    let kdef = def_of(res.group, res.version, kind);
    let ldef = def_of(res.group, res.version, &res.list_kind());
    let status = format!("{META}.Status");
    let watch_event = format!("{META}.WatchEvent");
    let gvk = Some((
        res.group.to_string(),
        res.version.to_string(),
        kind.to_string(),
    ));
    let tag = tag(res.group, res.version);
    let ns_seg = if res.namespaced() {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let coll = format!("{prefix}{ns_seg}/{}", res.plural);
    let item = format!("{coll}/{{name}}");
    let mk_op = |method, id: String, description: String, action, params, body, responses| Op {
        method,
        id,
        description,
        action,
        params,
        body,
        responses,
        gvk: gvk.clone(),
        watch: false,
        tag: tag.clone(),
    };
    let scope_params = |with_name: bool| {
        let mut v = Vec::new();
        if with_name {
            v.push(name_param(kind));
        }
        if res.namespaced() {
            v.push(namespace_param());
        }
        v.push(pretty());
        v
    };
    let writes = |patch: bool| {
        let mut v = vec![dry_run(), field_manager(patch), field_validation()];
        if patch {
            v.push(force());
        }
        v
    };
    let obj_responses = |codes: &[(&'static str, &'static str)], def: &str| {
        let mut v: Vec<(&'static str, &'static str, Option<String>)> = codes
            .iter()
            .map(|(c, d)| (*c, *d, Some(def.to_string())))
            .collect();
        v.push(unauthorized());
        v
    };

    // The collection: list, create, deletecollection.
    let mut ops = vec![
        mk_op(
            "get",
            format!("list{gv}{scope}{kind}"),
            format!("list or watch objects of kind {kind}"),
            "list",
            list_params(false),
            None,
            obj_responses(&[("200", "OK")], &ldef),
        ),
        mk_op(
            "post",
            format!("create{gv}{scope}{kind}"),
            format!("create a {kind}"),
            "post",
            writes(false),
            Some(BodyKind::Object(kdef.clone())),
            obj_responses(
                &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                &kdef,
            ),
        ),
    ];
    if res.verbs().contains(&"deletecollection") {
        let mut params = delete_params();
        params.extend(list_params(false));
        params.sort_by_key(|p| p.name);
        params.dedup_by_key(|p| p.name);
        ops.push(mk_op(
            "delete",
            format!("delete{gv}Collection{scope}{kind}"),
            format!("delete collection of {kind}"),
            "deletecollection",
            params,
            Some(BodyKind::Delete),
            obj_responses(&[("200", "OK")], &status),
        ));
    }
    out.insert(
        coll.clone(),
        PathItem {
            params: scope_params(false),
            ops,
        },
    );

    // One object: read, replace, patch, delete.
    out.insert(
        item.clone(),
        PathItem {
            params: scope_params(true),
            ops: vec![
                mk_op(
                    "get",
                    format!("read{gv}{scope}{kind}"),
                    format!("read the specified {kind}"),
                    "get",
                    Vec::new(),
                    None,
                    obj_responses(&[("200", "OK")], &kdef),
                ),
                mk_op(
                    "put",
                    format!("replace{gv}{scope}{kind}"),
                    format!("replace the specified {kind}"),
                    "put",
                    writes(false),
                    Some(BodyKind::Object(kdef.clone())),
                    obj_responses(&[("200", "OK"), ("201", "Created")], &kdef),
                ),
                mk_op(
                    "patch",
                    format!("patch{gv}{scope}{kind}"),
                    format!("partially update the specified {kind}"),
                    "patch",
                    writes(true),
                    Some(BodyKind::Patch),
                    obj_responses(&[("200", "OK"), ("201", "Created")], &kdef),
                ),
                mk_op(
                    "delete",
                    format!("delete{gv}{scope}{kind}"),
                    format!("delete a {kind}"),
                    "delete",
                    delete_params(),
                    Some(BodyKind::Delete),
                    obj_responses(&[("200", "OK"), ("202", "Accepted")], &status),
                ),
            ],
        },
    );

    // Subresources.
    for sub in res.subresources {
        let (sg, sv, sk) = subresource_kind(res, sub);
        let sdef = def_of(&sg, &sv, &sk);
        let sgvk = Some((sg, sv, sk));
        let subc = capitalize(sub);
        let path = format!("{item}/{sub}");
        let with = |mut op: Op| {
            op.gvk = sgvk.clone();
            op
        };
        let ops = match *sub {
            "binding" | "token" => vec![with(mk_op(
                "post",
                format!("create{gv}{scope}{kind}{subc}"),
                format!("create {sub} of a {kind}"),
                "post",
                writes(false),
                Some(BodyKind::Object(sdef.clone())),
                obj_responses(
                    &[("200", "OK"), ("201", "Created"), ("202", "Accepted")],
                    &sdef,
                ),
            ))],
            "finalize" => vec![with(mk_op(
                "put",
                format!("replace{gv}{scope}{kind}{subc}"),
                format!("replace finalize of the specified {kind}"),
                "put",
                writes(false),
                Some(BodyKind::Object(sdef.clone())),
                obj_responses(&[("200", "OK"), ("201", "Created")], &sdef),
            ))],
            _ => vec![
                with(mk_op(
                    "get",
                    format!("read{gv}{scope}{kind}{subc}"),
                    format!("read {sub} of the specified {kind}"),
                    "get",
                    Vec::new(),
                    None,
                    obj_responses(&[("200", "OK")], &sdef),
                )),
                with(mk_op(
                    "put",
                    format!("replace{gv}{scope}{kind}{subc}"),
                    format!("replace {sub} of the specified {kind}"),
                    "put",
                    writes(false),
                    Some(BodyKind::Object(sdef.clone())),
                    obj_responses(&[("200", "OK"), ("201", "Created")], &sdef),
                )),
                with(mk_op(
                    "patch",
                    format!("patch{gv}{scope}{kind}{subc}"),
                    format!("partially update {sub} of the specified {kind}"),
                    "patch",
                    writes(true),
                    Some(BodyKind::Patch),
                    obj_responses(&[("200", "OK"), ("201", "Created")], &sdef),
                )),
            ],
        };
        let mut params = scope_params(true);
        if *sub == "binding" {
            params[0].description = format!("name of the {}", sgvk.as_ref().map_or("", |g| &g.2));
        }
        out.insert(path, PathItem { params, ops });
    }

    // Watches (deprecated paths, still served) and the all-namespaces list.
    let watch_op = |id: String, description: String, action| Op {
        watch: true,
        ..mk_op(
            "get",
            id,
            description,
            action,
            Vec::new(),
            None,
            obj_responses(&[("200", "OK")], &watch_event),
        )
    };
    let watch_params = |with_name: bool, all: bool| {
        let mut v = list_params(true);
        if with_name {
            v.insert(0, name_param(kind));
        }
        if res.namespaced() && !all {
            v.push(namespace_param());
        }
        v
    };
    out.insert(
        format!("{prefix}/watch{ns_seg}/{}", res.plural),
        PathItem {
            params: watch_params(false, false),
            ops: vec![watch_op(
                format!("watch{gv}{scope}{kind}List"),
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                "watchlist",
            )],
        },
    );
    out.insert(
        format!("{prefix}/watch{ns_seg}/{}/{{name}}", res.plural),
        PathItem {
            params: watch_params(true, false),
            ops: vec![watch_op(
                format!("watch{gv}{scope}{kind}"),
                format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
                "watch",
            )],
        },
    );
    if res.namespaced() {
        out.insert(
            format!("{prefix}/{}", res.plural),
            PathItem {
                params: watch_params(false, true),
                ops: vec![mk_op(
                    "get",
                    format!("list{gv}{kind}ForAllNamespaces"),
                    format!("list or watch objects of kind {kind}"),
                    "list",
                    Vec::new(),
                    None,
                    obj_responses(&[("200", "OK")], &ldef),
                )],
            },
        );
        out.insert(
            format!("{prefix}/watch/{}", res.plural),
            PathItem {
                params: watch_params(false, true),
                ops: vec![watch_op(
                    format!("watch{gv}{kind}ListForAllNamespaces"),
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    "watchlist",
                )],
            },
        );
    }
}

/// A discovery GET (`/api/`, `/apis/`, `/apis/<g>/`, `/api/v1/`, `/apis/<g>/<v>/`).
fn discovery_path(
    path: String,
    id: String,
    description: &str,
    def: &str,
    tag: String,
    out: &mut BTreeMap<String, PathItem>,
) {
    out.insert(
        path,
        PathItem {
            params: Vec::new(),
            ops: vec![Op {
                method: "get",
                id,
                description: description.to_string(),
                action: "",
                params: Vec::new(),
                body: None,
                responses: vec![("200", "OK", Some(format!("{META}.{def}"))), unauthorized()],
                gvk: None,
                watch: false,
                tag,
            }],
        },
    );
}

fn group_version_paths(group: &str, version: &str, out: &mut BTreeMap<String, PathItem>) {
    discovery_path(
        format!("/{}/", gv_path(group, version)),
        format!(
            "get{}{}APIResources",
            group_camel(group),
            capitalize(version)
        ),
        "get available resources",
        "APIResourceList",
        tag(group, version),
        out,
    );
    for res in registry::resources_in(group, version) {
        resource_paths(res, out);
    }
}

fn group_paths(group: &str, out: &mut BTreeMap<String, PathItem>) {
    let g = group_camel(group);
    let mut c = g.chars();
    let lower: String = match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    };
    discovery_path(
        format!("/apis/{group}/"),
        format!("get{g}APIGroup"),
        "get information of a group",
        "APIGroup",
        lower,
        out,
    );
}

/// Every discovery path with a v3 document: `api`, `api/v1`, `apis`, `apis/<g>`, `apis/<g>/<v>`.
pub fn v3_paths() -> Vec<String> {
    let mut paths = vec!["api".to_string(), "api/v1".to_string(), "apis".to_string()];
    let mut groups = BTreeSet::new();
    for (g, v) in registry::group_versions() {
        if groups.insert(g) {
            paths.push(format!("apis/{g}"));
        }
        paths.push(format!("apis/{g}/{v}"));
    }
    paths.sort();
    paths
}

fn paths_for(path: &str) -> Option<BTreeMap<String, PathItem>> {
    let mut out = BTreeMap::new();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api"] => discovery_path(
            "/api/".into(),
            "getCoreAPIVersions".into(),
            "get available API versions",
            "APIVersions",
            "core".into(),
            &mut out,
        ),
        ["apis"] => discovery_path(
            "/apis/".into(),
            "getAPIVersions".into(),
            "get available API versions",
            "APIGroupList",
            "apis".into(),
            &mut out,
        ),
        ["api", v] => {
            registry::resources_in("", v).next()?;
            group_version_paths("", v, &mut out);
        }
        ["apis", g] => {
            registry::group_versions().iter().find(|(x, _)| x == g)?;
            group_paths(g, &mut out);
        }
        ["apis", g, v] => {
            registry::resources_in(g, v).next()?;
            group_version_paths(g, v, &mut out);
        }
        _ => return None,
    }
    Some(out)
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.insert(ref_name(s).to_string());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The definitions `roots` reach through `$ref`, including themselves.
fn closure(roots: BTreeSet<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.into_iter().collect();
    while let Some(n) = stack.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(d) = definition(&n) {
            let mut found = BTreeSet::new();
            collect_refs(d, &mut found);
            stack.extend(found.into_iter().filter(|f| !seen.contains(f)));
        }
    }
    seen
}

/// A definition in OpenAPI 3 form: refs point into `components/schemas`, and a `$ref`
/// with siblings (a property's description) becomes `allOf: [{$ref}]` plus the siblings,
/// since OpenAPI 3.0 ignores a `$ref`'s siblings.
fn to_v3(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let target = Flavor::V3.reference(ref_name(r));
                if m.len() == 1 {
                    return target;
                }
                let mut out = Map::new();
                out.insert("allOf".into(), json!([target]));
                for (k, x) in m {
                    if k != "$ref" {
                        out.insert(k.clone(), to_v3(x));
                    }
                }
                return Value::Object(out);
            }
            Value::Object(m.iter().map(|(k, x)| (k.clone(), to_v3(x))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

/// Every definition in OpenAPI 3 form, converted once. IntOrString and Quantity are
/// `oneOf` their JSON types in OpenAPI 3 (a plain `string` in Swagger 2.0), as
/// kube-openapi publishes them — which is also why `kubectl explain` names them
/// (`maxSurge <IntOrString>`) instead of printing `<string>`.
fn v3_schemas() -> &'static Map<String, Value> {
    static V3: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    V3.get_or_init(|| {
        definitions()
            .iter()
            .map(|(n, d)| {
                let mut v = to_v3(d);
                let one_of = match n.as_str() {
                    "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
                        Some(json!([{"type": "integer"}, {"type": "string"}]))
                    }
                    "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
                        Some(json!([{"type": "string"}, {"type": "number"}]))
                    }
                    _ => None,
                };
                if let (Some(one_of), Some(m)) = (one_of, v.as_object_mut()) {
                    m.remove("type");
                    m.insert("oneOf".into(), one_of);
                }
                (n.clone(), v)
            })
            .collect()
    })
}

fn bearer_token() -> Value {
    json!({
        "BearerToken": {
            "type": "apiKey",
            "description": "Bearer Token authentication",
            "name": "authorization",
            "in": "header",
        }
    })
}

fn render_paths(
    paths: &BTreeMap<String, PathItem>,
    flavor: Flavor,
) -> (Map<String, Value>, BTreeSet<String>) {
    let mut rendered = Map::new();
    let mut refs = BTreeSet::new();
    for (p, item) in paths {
        let v = item.render(flavor);
        collect_refs(&v, &mut refs);
        rendered.insert(p.clone(), v);
    }
    (rendered, refs)
}

/// The OpenAPI 3.0 document of one discovery path (`api/v1`, `apis/apps/v1`, `apis/apps`,
/// `api`, `apis`), or `None` when kadm serves nothing there.
pub fn v3_document(path: &str) -> Option<Value> {
    let paths = paths_for(path)?;
    let (rendered, refs) = render_paths(&paths, Flavor::V3);
    let v3 = v3_schemas();
    let schemas: Map<String, Value> = closure(refs)
        .into_iter()
        .filter_map(|n| v3.get(&n).map(|d| (n, d.clone())))
        .collect();
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": rendered,
        "components": {"schemas": schemas, "securitySchemes": bearer_token()},
    }))
}

/// The OpenAPI 3.0 document of `group/version` (core: group `""`).
pub fn v3_group_version(group: &str, version: &str) -> Option<Value> {
    v3_document(&gv_path(group, version))
}

/// `/openapi/v3` from each document's path and hash.
pub fn v3_root_from(entries: &[(String, String)]) -> Value {
    let paths: Map<String, Value> = entries
        .iter()
        .map(|(path, h)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={h}")}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3`: every document's server-relative URL with the hash of its JSON
/// (the hash of `serde_json::to_vec` of [`v3_document`]).
pub fn v3_root() -> Value {
    let entries: Vec<(String, String)> = v3_paths()
        .into_iter()
        .filter_map(|p| {
            let doc = v3_document(&p)?;
            let bytes = serde_json::to_vec(&doc).ok()?;
            Some((p, hash(&bytes)))
        })
        .collect();
    v3_root_from(&entries)
}

/// `/openapi/v2`: one Swagger 2.0 document with the paths of every resource in `served`
/// (plus discovery paths) and every definition they reach.
pub fn v2_document(served: &[ResourceInfo]) -> Value {
    let mut paths = BTreeMap::new();
    discovery_path(
        "/api/".into(),
        "getCoreAPIVersions".into(),
        "get available API versions",
        "APIVersions",
        "core".into(),
        &mut paths,
    );
    discovery_path(
        "/apis/".into(),
        "getAPIVersions".into(),
        "get available API versions",
        "APIGroupList",
        "apis".into(),
        &mut paths,
    );
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in served {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
            discovery_path(
                format!("/{}/", gv_path(r.group, r.version)),
                format!(
                    "get{}{}APIResources",
                    group_camel(r.group),
                    capitalize(r.version)
                ),
                "get available resources",
                "APIResourceList",
                tag(r.group, r.version),
                &mut paths,
            );
            if !r.group.is_empty() && !paths.contains_key(&format!("/apis/{}/", r.group)) {
                group_paths(r.group, &mut paths);
            }
        }
        resource_paths(r, &mut paths);
    }
    let (rendered, refs) = render_paths(&paths, Flavor::V2);
    let defs: Map<String, Value> = closure(refs)
        .into_iter()
        .filter_map(|n| definitions().get(&n).map(|d| (n, d.clone())))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": rendered,
        "definitions": defs,
        "securityDefinitions": bearer_token(),
        "security": [{"BearerToken": []}],
    })
}
