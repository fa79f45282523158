#!/usr/bin/env python3
"""Generate kadm's OpenAPI data: components/apimachinery/src/openapi/{definitions.json,patch_meta.json}.

kadm-apiserver serves Kubernetes' OpenAPI documents (/openapi/v2, /openapi/v3/...), uses them for
server-side field validation (`fieldValidation=Strict|Warn|Ignore`), and the strategic-merge-patch
engine needs each field's patch strategy and merge key. All of that comes from Kubernetes v1.33's
OpenAPI definitions, which this script extracts (API schema data only: no code is taken).

Source: the PyPI wheel `kubernetes-validate==1.37.0`, file
`kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json` (707 definitions under
`$defs`, JSON-schema flavoured: nullable types as `["string", "null"]`, `$ref: "#/$defs/<name>"`,
IntOrString and Quantity as `oneOf`, apiVersion/kind pinned with `enum`), with the
`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`,
`x-kubernetes-list-map-keys`, `x-kubernetes-map-type` and `x-kubernetes-group-version-kind`
extensions kept.

Run from the repository root (Python 3 standard library only):

    pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv
    python3 tools/gen-openapi.py --wheel /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl

(`--definitions PATH` reads an already extracted `_definitions.json` instead.) Re-run it whenever
components/apimachinery/src/registry.rs gains a kind: the served kinds are read from that file.

What it writes:

1. `definitions.json` (~460 KB, one definition per line; small enough not to need gzip):
   `{"source": {...}, "definitions": {<name>: <schema>}}`
   with every definition a served kind needs, transitively through `$ref`, plus the extra
   definitions listed in EXTRA below (autoscaling/v1 Scale, core/v1 Binding, meta/v1 DeleteOptions,
   Status, WatchEvent, APIResourceList, ...). Each schema is rewritten to OpenAPI (Swagger 2.0)
   form, as kube-apiserver's /openapi/v2 shows it:
     - `"type": ["string", "null"]` -> `"type": "string"`;
     - `$ref: "#/$defs/<name>"` -> `$ref: "#/definitions/<name>"` (the server rewrites these to
       `#/components/schemas/<name>` for OpenAPI v3);
     - IntOrString -> `{"type": "string", "format": "int-or-string"}`, Quantity -> `{"type": "string"}`
       (the server publishes both as `oneOf` their JSON types in OpenAPI v3, as Kubernetes does);
     - the `enum` that pins apiVersion/kind is dropped (Kubernetes' documents have none).
2. `patch_meta.json`: the compact patch-metadata table the strategic-merge-patch engine reads;
   its format is described at the top of components/apimachinery/src/openapi/mod.rs and in
   `describe_patch_meta_format()` below.
"""

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

WHEEL_MEMBER = "kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json"
ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "components/apimachinery/src/registry.rs"
OUT_DIR = ROOT / "components/apimachinery/src/openapi"

# Definitions the apiserver shows or uses beyond the served kinds and their lists.
EXTRA = [
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.core.v1.Binding",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
]

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# The wheel keeps no description for these two (they are `oneOf` there).
SCALAR_DEFS = {
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string. In JSON or YAML it "
        "is written as the inner type, so a field can accept a name or a number.",
        "format": "int-or-string",
        "type": "string",
    },
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number, written in JSON and "
        "YAML as a string with an optional suffix: a binary SI suffix (Ki, Mi, Gi, Ti, Pi, Ei), a "
        "decimal SI suffix (n, u, m, \"\", k, M, G, T, P, E) or a decimal exponent (e3, E6, ...), "
        "for example \"100m\", \"1Gi\" or \"1.5\".",
        "type": "string",
    },
}

PATCH_KEYS = {
    "x-kubernetes-patch-strategy": "patchStrategy",
    "x-kubernetes-patch-merge-key": "patchMergeKey",
    "x-kubernetes-list-type": "listType",
    "x-kubernetes-list-map-keys": "listMapKeys",
    "x-kubernetes-map-type": "mapType",
}


def describe_patch_meta_format():
    return (
        "kadm-patch-meta/v1: kinds maps '<group>/<version>/<Kind>' (group empty for core: '/v1/Pod') "
        "to a definition name; definitions maps every definition name to {mapType?, fields}; fields "
        "holds only non-scalar fields and fields with patch metadata: {type: array|map|object|scalar, "
        "ref?: definition of the object / array item / map value, patchStrategy?, patchMergeKey?, "
        "listType?, listMapKeys?, mapType?} (values as in the x-kubernetes-* extensions)."
    )


def load_definitions(args):
    if args.definitions:
        data = json.loads(Path(args.definitions).read_text())
    else:
        with zipfile.ZipFile(args.wheel) as z:
            data = json.loads(z.read(WHEEL_MEMBER))
    return data["$defs"]


def served_kinds():
    """(group, version, kind) for every `r("group", "version", "Kind", ...)` entry in registry.rs."""
    text = REGISTRY.read_text()
    kinds = []
    for m in re.finditer(r'\br\(\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",', text):
        if m.group(3) and m.group(3)[0].isupper():
            kinds.append((m.group(1), m.group(2), m.group(3)))
    if not kinds:
        sys.exit(f"no resources found in {REGISTRY}")
    return kinds


def gvk_index(defs):
    index = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), []).append(name)
    return index


def ref_name(ref):
    return ref.rsplit("/", 1)[-1]


def refs_in(schema, out):
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == "$ref" and isinstance(v, str):
                out.add(ref_name(v))
            else:
                refs_in(v, out)
    elif isinstance(schema, list):
        for v in schema:
            refs_in(v, out)


def closure(defs, roots):
    seen, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        if n not in defs:
            sys.exit(f"definition {n} is missing from the source")
        seen.add(n)
        found = set()
        refs_in(defs[n], found)
        stack.extend(found - seen)
    return seen


def clean(schema, prop_name=None):
    """One schema node in Swagger 2.0 form (see the module docstring)."""
    if isinstance(schema, list):
        return [clean(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            v = types[0] if len(types) == 1 else types
        elif k == "$ref":
            v = "#/definitions/" + ref_name(v)
        elif k == "enum" and prop_name in ("apiVersion", "kind"):
            continue
        elif k == "properties":
            v = {p: clean(s, p) for p, s in v.items()}
        else:
            v = clean(v)
        out[k] = v
    return dict(sorted(out.items()))


def field_meta(defs, schema):
    """The patch-meta entry of one property, or None for a plain scalar without metadata."""
    meta = {}
    for ext, key in PATCH_KEYS.items():
        if ext in schema:
            meta[key] = schema[ext]
    t = schema.get("type")
    if isinstance(t, list):
        t = [x for x in t if x != "null"][0]
    if "$ref" in schema:
        target = ref_name(schema["$ref"])
        if target in SCALAR_DEFS or defs[target].get("format") or defs[target].get("type") not in (
            "object",
            ["object", "null"],
        ):
            meta["type"] = "scalar"
        else:
            meta["type"] = "object"
            meta["ref"] = target
    elif t == "array":
        meta["type"] = "array"
        items = schema.get("items", {})
        if "$ref" in items and ref_name(items["$ref"]) not in SCALAR_DEFS:
            target = ref_name(items["$ref"])
            if "properties" in defs[target] or defs[target].get("type") in ("object", ["object", "null"]):
                meta["ref"] = target
    elif t == "object" and "additionalProperties" in schema:
        meta["type"] = "map"
        ap = schema["additionalProperties"]
        if isinstance(ap, dict) and "$ref" in ap and ref_name(ap["$ref"]) not in SCALAR_DEFS:
            target = ref_name(ap["$ref"])
            if "properties" in defs[target]:
                meta["ref"] = target
    elif t == "object":
        meta["type"] = "object"
    else:
        if not meta:
            return None
        meta["type"] = "scalar"
    return dict(sorted(meta.items()))


def one_per_line(head, key, entries):
    """Compact JSON with one entry of `key` per line: small diffs when Kubernetes changes a type."""
    lines = ["{"]
    for k, v in head.items():
        lines.append(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), sort_keys=True)},")
    lines.append(f" {json.dumps(key)}: {{")
    items = list(entries.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i + 1 < len(items) else ""
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), sort_keys=True)}{comma}")
    lines.append(" }")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == {**head, key: entries}
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheel", help="kubernetes_validate-1.37.0-py3-none-any.whl")
    src.add_argument("--definitions", help="an extracted v1.33.0-local/_definitions.json")
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    args = ap.parse_args()

    defs = load_definitions(args)
    index = gvk_index(defs)
    kinds = served_kinds()
    roots, kind_defs = set(EXTRA), {}
    for g, v, k in kinds:
        for kind in (k, k + "List"):
            names = index.get((g, v, kind))
            if not names:
                sys.exit(f"no definition for {g}/{v} {kind}")
            if len(names) != 1:
                sys.exit(f"several definitions for {g}/{v} {kind}: {names}")
            roots.add(names[0])
            kind_defs[f"{g}/{v}/{kind}"] = names[0]
    for g, v, k in [("autoscaling", "v1", "Scale"), ("", "v1", "Binding")]:
        kind_defs[f"{g}/{v}/{k}"] = index[(g, v, k)][0]
    needed = sorted(closure(defs, roots))

    out_defs = {}
    for name in needed:
        out_defs[name] = SCALAR_DEFS[name] if name in SCALAR_DEFS else clean(defs[name])

    source = {
        "generator": "tools/gen-openapi.py",
        "package": "kubernetes-validate 1.37.0 (PyPI)",
        "file": WHEEL_MEMBER,
        "kubernetes": "v1.33.0",
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = one_per_line({"source": source}, "definitions", out_defs)
    (out_dir / "definitions.json").write_text(doc)
    stale = out_dir / "definitions.json.gz"
    if stale.exists():
        stale.unlink()

    meta_defs = {}
    for name in needed:
        schema = defs[name]
        entry = {}
        if "x-kubernetes-map-type" in schema:
            entry["mapType"] = schema["x-kubernetes-map-type"]
        fields = {}
        for prop, ps in sorted(schema.get("properties", {}).items()):
            fm = field_meta(defs, ps)
            if fm is not None:
                fields[prop] = fm
        entry["fields"] = fields
        meta_defs[name] = entry
    meta = {
        "format": "kadm-patch-meta/v1",
        "about": describe_patch_meta_format(),
        "source": source,
        "kinds": dict(sorted(kind_defs.items())),
        "definitions": meta_defs,
    }
    head = {k: meta[k] for k in ("format", "about", "source", "kinds")}
    (out_dir / "patch_meta.json").write_text(one_per_line(head, "definitions", meta_defs))

    print(
        f"{len(kinds)} served kinds, {len(needed)} definitions: definitions.json "
        f"{len(doc)} bytes, patch_meta.json "
        f"{(out_dir / 'patch_meta.json').stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
