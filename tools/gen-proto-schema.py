#!/usr/bin/env python3
"""Generate components/apimachinery/src/protobuf/schema.json.

kadm's apiserver keeps objects as JSON; kubectl >= 1.32 sends typed creates and
updates as Kubernetes protobuf. The decoder in
components/apimachinery/src/protobuf/ needs, for every message, the field numbers,
wire types, JSON names and how Go prints each field. This script collects that data
(field numbers and names only, no code) from three sources and writes it as JSON:

1. k8s-pb 0.9.0 (crates.io, prost-generated): messages, field tags, scalar kinds,
   labels (optional / repeated / map) and referenced message types.
2. k8s-openapi 0.29.0 (crates.io): JSON field names. prost snake-cases names
   (`podIPs` -> `pod_ips`), so the JSON name is recovered from k8s-openapi's serde
   code (`"podIPs" => Field::Key_pod_ips`) by matching names with underscores removed
   and case folded. Every `v1_*` module of the crate is read, newest first.
3. optional, recommended: the reflect metadata of a Go kubectl binary (default
   /usr/lib/google-cloud-sdk/bin/kubectl.1.33, the newest kubectl on kadm's machines).
   Go clients write every non-pointer field, zero or not, and the Go apiserver prints
   a zero non-pointer field only when its json tag has no `omitempty`. To turn a
   protobuf body into the JSON Kubernetes would show, the decoder must know whether
   a field is a Go pointer, value, struct, slice or map, whether it is `omitempty`,
   and which fields are `json:",inline"` embedded structs. The struct tags and field
   kinds are read from the ELF's runtime type descriptors (typelinks); nothing else is
   taken from the binary. Without it (--no-go-binary) every field keeps what the
   client sent, explicit zero values included, and omits what it did not; inline
   fields are then recognised from k8s-openapi (a message field whose own fields all
   appear in the parent's JSON).

Run (from the repo root; the crates must be in the cargo registry, e.g. after
`cargo fetch` in a scratch crate that depends on `k8s-pb = "0.9"` and
`k8s-openapi = { version = "0.29", features = ["v1_33"] }`):

    python3 tools/gen-proto-schema.py [--registry ~/.cargo/registry/src] \
        [--go-binary /usr/lib/google-cloud-sdk/bin/kubectl.1.33 | --no-go-binary] \
        [--out components/apimachinery/src/protobuf/schema.json]

It prints a summary and every JSON name it could not find (and so lower-camel-cased).

Output format (`schema.json`):

    {"sources": {...}, "special": {message: form}, "messages": {message: [field...]}}

A message is its full proto name (`k8s.io.api.core.v1.Pod`). A field is
`[tag, jsonName, kind, type, label, go]`, plus a 7th element (the key kind, always
"string" in Kubernetes) when label is "map":
- kind: string bool int32 int64 uint32 uint64 double float bytes, or message; for maps
  the kind of the value.
- type: the full message name when kind is message, else null.
- label: optional, repeated or map.
- go: how Go prints the field in JSON: value | pointer | struct | slice | map | inline,
  with ",omitempty" appended when the json tag has it. `inline` fields are embedded
  structs whose fields are printed in the parent object. Fields are listed in Go
  struct order (the order Go prints them), then proto-only fields in tag order.
`special` names messages with their own JSON form: time, microtime, duration,
quantity, intorstring, rawextension, fieldsv1, array (a Go slice type wrapped in a
message with `repeated items = 1`, like meta/v1 Verbs or ExtraValue).

Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import struct
import sys

PB_VERSION = "0.9.0"
OPENAPI_VERSION = "0.29.0"
DEFAULT_GO_BINARY = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"

# Packages kadm serves or accepts; messages they reference are added transitively.
ROOT_PACKAGES = [
    "k8s.io.api.core.v1",
    "k8s.io.api.apps.v1",
    "k8s.io.api.batch.v1",
    "k8s.io.api.coordination.v1",
    "k8s.io.api.discovery.v1",
    "k8s.io.api.events.v1",
    "k8s.io.api.rbac.v1",
    "k8s.io.api.certificates.v1",
    "k8s.io.api.policy.v1",
    "k8s.io.api.scheduling.v1",
    "k8s.io.api.autoscaling.v1",
    "k8s.io.api.authentication.v1",
    "k8s.io.api.authorization.v1",
    "k8s.io.api.networking.v1",
    "k8s.io.api.storage.v1",
    "k8s.io.apimachinery.pkg.apis.meta.v1",
    "k8s.io.apimachinery.pkg.runtime",
    "k8s.io.apimachinery.pkg.util.intstr",
    "k8s.io.apimachinery.pkg.api.resource",
]

META = "k8s.io.apimachinery.pkg.apis.meta.v1."
SPECIAL = {
    META + "Time": "time",
    META + "MicroTime": "microtime",
    META + "Duration": "duration",
    META + "FieldsV1": "fieldsv1",
    META + "Verbs": "array",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "intorstring",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "rawextension",
    "k8s.io.api.authentication.v1.ExtraValue": "array",
    "k8s.io.api.authorization.v1.ExtraValue": "array",
    "k8s.io.api.certificates.v1.ExtraValue": "array",
}

# k8s-pb's top-level modules and the proto package prefix each stands for.
PB_TOP = {"api": "k8s.io.api", "apimachinery": "k8s.io.apimachinery"}
SCALARS = {"string", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "bytes",
           "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"}


def norm(name):
    return name.replace("_", "").lower()


def lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


# ---------------------------------------------------------------- k8s-pb

def find_crate(registry, name):
    hits = sorted(glob.glob(os.path.join(os.path.expanduser(registry), "*", name)))
    if not hits:
        sys.exit(f"{name} not found under {registry}: run `cargo fetch` in a crate that depends on it")
    return hits[-1]


def inner_type(ty):
    """The message path inside Option<..>, Vec<..>, Box<..> or the value of a BTreeMap."""
    ty = re.sub(r"\s+", "", ty)
    while True:
        ty = ty.rstrip(",")
        m = re.fullmatch(r"(?:::)?(?:core::option::Option|prost::alloc::vec::Vec|prost::alloc::boxed::Box|"
                         r"::core::option::Option|::prost::alloc::vec::Vec|::prost::alloc::boxed::Box)<(.*)>", ty)
        if m:
            ty = m.group(1)
            continue
        m = re.fullmatch(r"(?:::)?(?:prost::alloc::collections::|std::collections::)?BTreeMap<(.*)>", ty)
        if m:
            args = m.group(1)
            depth = 0
            for i, c in enumerate(args):
                if c == "<":
                    depth += 1
                elif c == ">":
                    depth -= 1
                elif c == "," and depth == 0:
                    ty = args[i + 1:].rstrip(",")
                    break
            else:
                raise ValueError(f"cannot split map type {ty}")
            continue
        return ty


def resolve(module, path):
    segs = path.split("::")
    mod = list(module)
    while segs and segs[0] == "super":
        mod.pop()
        segs.pop(0)
    if segs and segs[0] == "crate":
        mod = []
        segs.pop(0)
    full = mod + segs
    top = PB_TOP.get(full[0])
    if top is None:
        raise ValueError(f"reference outside api/apimachinery: {path} from {module}")
    return ".".join([top] + full[1:])


def parse_attr(attr):
    """#[prost(...)] contents -> (kind, label, tag, map_key)."""
    tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
    m = re.match(r'\s*(?:btree_map|hash_map|map)\s*=\s*"(\w+),\s*(\w+)"', attr)
    if m:
        return m.group(2), "map", tag, m.group(1)
    kind = re.match(r"\s*(\w+)", attr).group(1)
    if kind == "enumeration":
        kind = "int32"
    label = "repeated" if re.search(r"\brepeated\b", attr) else "optional"
    return kind, label, tag, None


def parse_pb(root):
    messages = {}
    for path in sorted(glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        module = rel.split(os.sep)
        if module[0] not in PB_TOP:
            continue
        package = ".".join([PB_TOP[module[0]]] + module[1:])
        text = open(path, encoding="utf-8").read()
        for sm in re.finditer(r"^pub struct (\w+) \{(.*?)^\}", text, re.S | re.M):
            name, body = sm.group(1), sm.group(2)
            fields = []
            attr = None
            lines = body.split("\n")
            i = 0
            while i < len(lines):
                line = lines[i].strip()
                if line.startswith("#[prost("):
                    buf = line
                    while not buf.endswith(")]"):
                        i += 1
                        buf += " " + lines[i].strip()
                    attr = buf[len("#[prost("):-2]
                elif line.startswith("pub ") and attr is not None:
                    buf = line
                    while not (buf.endswith(",") and buf.count("<") == buf.count(">")):
                        i += 1
                        buf += lines[i].strip()
                    fm = re.match(r"pub (?:r#)?(\w+):\s*(.*),$", buf)
                    fname, fty = fm.group(1), fm.group(2)
                    kind, label, tag, key = parse_attr(attr)
                    mtype = None
                    if kind not in SCALARS:
                        if kind != "message":
                            raise ValueError(f"{package}.{name}.{fname}: unsupported prost kind {kind}")
                        mtype = resolve(module, inner_type(fty))
                    fields.append({"tag": tag, "snake": fname, "kind": kind, "type": mtype,
                                   "label": label, "key": key})
                    attr = None
                i += 1
            messages[f"{package}.{name}"] = fields
        for sm in re.finditer(r"^pub struct (\w+) \{\}", text, re.M):
            messages[f"{package}.{sm.group(1)}"] = []
    return messages


# ---------------------------------------------------------------- k8s-openapi

def parse_openapi(root):
    """{(package, Struct): {norm(snake): json}} merged over every v1_* module, newest first."""
    names = {}
    versions = sorted(glob.glob(os.path.join(root, "src", "v1_*")),
                      key=lambda p: int(p.rsplit("_", 1)[1]), reverse=True)
    for vdir in versions:
        for path in glob.glob(os.path.join(vdir, "**", "*.rs"), recursive=True):
            rel = os.path.relpath(os.path.dirname(path), vdir).split(os.sep)
            if rel[0] not in PB_TOP:
                continue
            package = ".".join([PB_TOP[rel[0]]] + rel[1:])
            text = open(path, encoding="utf-8").read()
            structs = [(m.start(), m.group(1)) for m in re.finditer(r"^pub struct (\w+)", text, re.M)]
            for idx, (start, sname) in enumerate(structs):
                end = structs[idx + 1][0] if idx + 1 < len(structs) else len(text)
                entry = names.setdefault((package, sname), {})
                for fm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text[start:end]):
                    entry.setdefault(norm(fm.group(2)), fm.group(1))
    return names, [os.path.basename(v) for v in versions]


# ---------------------------------------------------------------- Go reflect metadata

class GoBinary:
    """Reads struct types from a Go (1.21+) amd64 ELF's runtime type descriptors."""

    KIND_MASK = 0x1F
    BOOL, MAP, PTR, SLICE, STRING, STRUCT, INTERFACE = 1, 21, 22, 23, 24, 25, 20

    def __init__(self, path):
        self.data = open(path, "rb").read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2:
            raise ValueError(f"{path} is not a 64-bit ELF")
        shoff = struct.unpack_from("<Q", d, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        secs = []
        for i in range(shnum):
            name, _typ, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize)
            secs.append((name, addr, off, size))
        stroff = secs[shstrndx][2]
        self.sections = {}
        for name, addr, off, size in secs:
            sname = d[stroff + name:d.index(b"\0", stroff + name)].decode()
            self.sections[sname] = (addr, off, size)
        if ".typelink" not in self.sections:
            raise ValueError(f"{path} has no .typelink section")
        self.base = self.sections[".rodata"][0]

    def off(self, va):
        for addr, off, size in self.sections.values():
            if addr and addr <= va < addr + size:
                return off + va - addr
        raise ValueError(f"address {va:#x} outside the binary")

    def u64(self, va):
        return struct.unpack_from("<Q", self.data, self.off(va))[0]

    def varint(self, o):
        v = shift = 0
        while True:
            b = self.data[o]
            o += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v, o

    def name(self, va):
        o = self.off(va)
        flags = self.data[o]
        n, o = self.varint(o + 1)
        text = self.data[o:o + n].decode("utf-8", "replace")
        o += n
        tag = ""
        if flags & 2:
            t, o = self.varint(o)
            tag = self.data[o:o + t].decode("utf-8", "replace")
        return text, tag, bool(flags & 8)

    def kind(self, t):
        return self.data[self.off(t) + 23] & self.KIND_MASK

    def type_name(self, t):
        o = self.off(t)
        tflag = self.data[o + 20]
        n = self.name(self.base + struct.unpack_from("<i", self.data, o + 40)[0])[0]
        return n[1:] if tflag & 2 else n

    def pkg_path(self, t):
        o = self.off(t)
        if not self.data[o + 20] & 1:  # no uncommon type
            return None
        ext = {self.STRUCT: 80, self.PTR: 56, self.SLICE: 56}.get(self.kind(t))
        if ext is None:
            return None
        return self.name(self.base + struct.unpack_from("<i", self.data, o + ext)[0])[0]

    def structs(self, prefixes):
        """{(pkgpath, Name): [(goName, tag, embedded, fieldKind)]} for named structs under prefixes."""
        addr, off, size = self.sections[".typelink"]
        stack = [self.base + struct.unpack_from("<i", self.data, off + i)[0] for i in range(0, size, 4)]
        seen, out = set(), {}
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            k = self.kind(t)
            if k in (self.PTR, self.SLICE, 17):
                stack.append(self.u64(t + 48))
            elif k == self.MAP:
                stack += [self.u64(t + 48), self.u64(t + 56)]
            elif k == self.STRUCT:
                fp, fl = self.u64(t + 56), self.u64(t + 64)
                fields = []
                for j in range(fl):
                    nm, ft = self.u64(fp + 24 * j), self.u64(fp + 24 * j + 8)
                    gname, tag, embedded = self.name(nm)
                    fields.append((gname, tag, embedded, self.kind(ft)))
                    stack.append(ft)
                pkg = self.pkg_path(t)
                if pkg and any(pkg.startswith(p) for p in prefixes):
                    out[(pkg, self.type_name(t).split(".", 1)[-1])] = fields
        return out


def go_tag(tag, key):
    m = re.search(key + r':"([^"]*)"', tag)
    return m.group(1) if m else None


def go_fields(binary):
    """{(proto package, Message): [(protoTag|None, jsonName, omitempty, shape)]} in Go order."""
    gb = GoBinary(binary)
    out = {}
    for (pkg, name), fields in gb.structs(["k8s.io/api/", "k8s.io/apimachinery/"]).items():
        rows = []
        for gname, tag, embedded, kind in fields:
            pb = go_tag(tag, "protobuf")
            js = go_tag(tag, "json")
            pbparts = (pb or "").split(",")
            num = int(pbparts[1]) if len(pbparts) > 1 and pbparts[1].isdigit() else None
            parts = (js if js is not None else "").split(",")
            jname, opts = parts[0], parts[1:]
            if js == "-":
                continue
            if embedded and jname == "" and kind == GoBinary.STRUCT:
                shape = "inline"
            elif "inline" in opts:
                shape = "inline"
            else:
                shape = {GoBinary.PTR: "pointer", GoBinary.SLICE: "slice", GoBinary.MAP: "map",
                         GoBinary.STRUCT: "struct", GoBinary.INTERFACE: "pointer"}.get(kind, "value")
            rows.append((num, jname or gname, "omitempty" in opts, shape))
        out[(pkg.replace("/", "."), name)] = rows
    return out


# ---------------------------------------------------------------- assembly

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", default="~/.cargo/registry/src")
    ap.add_argument("--go-binary", default=DEFAULT_GO_BINARY)
    ap.add_argument("--no-go-binary", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                  "components", "apimachinery", "src", "protobuf", "schema.json"))
    args = ap.parse_args()

    pb_root = find_crate(args.registry, f"k8s-pb-{PB_VERSION}")
    oa_root = find_crate(args.registry, f"k8s-openapi-{OPENAPI_VERSION}")
    pb = parse_pb(pb_root)
    openapi, oa_versions = parse_openapi(oa_root)
    go = {}
    go_source = None
    if not args.no_go_binary:
        if os.path.exists(args.go_binary):
            go = go_fields(args.go_binary)
            go_source = os.path.basename(args.go_binary)
        else:
            print(f"warning: {args.go_binary} not found: Go field shapes fall back to k8s-openapi", file=sys.stderr)

    # global fallback: every JSON name k8s-openapi knows, by normalized name
    global_names = {}
    for entry in openapi.values():
        for k, v in entry.items():
            global_names.setdefault(k, set()).add(v)

    # prost UpperCamel-cases message names (HTTPGetAction -> HttpGetAction, CSIDriver ->
    # CsiDriver); the proto name is the Go type name, which k8s-openapi and Go keep
    real = {}
    for package, sname in list(openapi) + list(go):
        real.setdefault((package, sname.lower()), sname)
    for package, sname in go:  # Go wins over k8s-openapi
        real[(package, sname.lower())] = sname

    def rename(full):
        package, name = full.rsplit(".", 1)
        return f"{package}.{real.get((package, name.lower()), name)}"

    pb = {rename(m): [dict(f, type=rename(f["type"]) if f["type"] else None) for f in fields]
          for m, fields in pb.items()}

    # transitive closure from the root packages
    wanted = [m for m in pb if m.rsplit(".", 1)[0] in ROOT_PACKAGES]
    selected = set()
    while wanted:
        m = wanted.pop()
        if m in selected:
            continue
        if m not in pb:
            sys.exit(f"message {m} is referenced but not defined in k8s-pb")
        selected.add(m)
        wanted += [f["type"] for f in pb[m] if f["type"]]

    report = {"fallback_camel": [], "ambiguous": [], "go_json_mismatch": [], "no_go_shape": [], "inline": []}
    messages = {}
    special = {}
    for full in sorted(selected):
        package, name = full.rsplit(".", 1)
        fields = pb[full]
        oa = openapi.get((package, name))
        gofs = go.get((package, name))
        go_by_tag = {row[0]: row for row in (gofs or []) if row[0] is not None}
        if full in SPECIAL:
            special[full] = SPECIAL[full]
        rows = []
        for f in fields:
            n = norm(f["snake"])
            gorow = go_by_tag.get(f["tag"])
            shape = None
            json_name = None
            if oa is not None and n in oa:
                json_name = oa[n]
            if gorow is not None:
                if gorow[3] == "inline":
                    shape = "inline"
                    json_name = ""
                else:
                    if json_name is not None and json_name != gorow[1]:
                        report["go_json_mismatch"].append(f"{full}.{f['snake']}: openapi {json_name} go {gorow[1]}")
                    if json_name is None:
                        json_name = gorow[1]
                    shape = gorow[3] + (",omitempty" if gorow[2] else "")
            if shape is None and oa is not None and f["type"] and n not in oa and f["label"] == "optional":
                # no Go metadata: an embedded struct shows up as its fields in the parent
                inner = [norm(x["snake"]) for x in pb.get(f["type"], [])]
                if inner and all(x in oa for x in inner):
                    shape, json_name = "inline", ""
            if json_name is None:
                cands = global_names.get(n, set())
                if len(cands) == 1:
                    json_name = next(iter(cands))
                else:
                    if len(cands) > 1:
                        report["ambiguous"].append(f"{full}.{f['snake']}: {sorted(cands)}")
                    json_name = lower_camel(f["snake"])
                    report["fallback_camel"].append(f"{full}.{f['snake']} -> {json_name}")
            if shape is None:
                # no Go metadata: keep what the client sent, omit what it did not
                report["no_go_shape"].append(f"{full}.{f['snake']}")
                if f["label"] == "repeated" or f["kind"] == "bytes":
                    shape = "slice,omitempty"
                elif f["label"] == "map":
                    shape = "map,omitempty"
                else:
                    shape = "pointer,omitempty"
            if shape == "inline":
                report["inline"].append(f"{full}.{f['snake']}")
            row = [f["tag"], json_name, f["kind"], f["type"], f["label"], shape]
            if f["label"] == "map":
                if f["key"] != "string":
                    sys.exit(f"{full}.{f['snake']}: map key {f['key']} is not a string")
                row.append(f["key"])
            rows.append(row)
        # Go struct order first (the order Go prints fields), then proto-only fields by tag
        order = {row[0]: i for i, row in enumerate(gofs or []) if row[0] is not None}
        rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
        messages[full] = rows

    out = {
        "sources": {
            "generator": "tools/gen-proto-schema.py",
            "k8s-pb": PB_VERSION,
            "k8s-openapi": f"{OPENAPI_VERSION} ({', '.join(oa_versions)})",
            "go-shapes": go_source or "none (k8s-openapi fallback)",
        },
        "special": special,
        "messages": messages,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        fh.write(f' "sources": {json.dumps(out["sources"])},\n')
        fh.write(f' "special": {json.dumps(out["special"])},\n')
        fh.write(' "messages": {\n')
        items = list(messages.items())
        for i, (k, v) in enumerate(items):
            comma = "," if i + 1 < len(items) else ""
            fh.write(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{comma}\n")
        fh.write(" }\n}\n")

    nfields = sum(len(v) for v in messages.values())
    print(f"wrote {args.out}: {len(messages)} messages, {nfields} fields")
    print(f"sources: k8s-pb {PB_VERSION}, k8s-openapi {OPENAPI_VERSION} ({len(oa_versions)} versions), "
          f"go shapes from {go_source or 'nothing'}")
    print(f"inline fields: {', '.join(report['inline'])}")
    for key in ("no_go_shape", "fallback_camel", "ambiguous", "go_json_mismatch"):
        print(f"{key}: {len(report[key])}")
        for line in report[key]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
