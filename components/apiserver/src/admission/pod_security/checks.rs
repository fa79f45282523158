//! The Pod Security Standards' checks (Kubernetes' `k8s.io/pod-security-admission/policy`),
//! as of Kubernetes 1.33: pure functions of a pod's (or pod template's) metadata and spec.
//!
//! Each check has versions: a namespace pinned to `v1.25` is evaluated with the checks as
//! they were in 1.25; `latest` with the newest. Reasons and details are Kubernetes' strings,
//! which clients and people match on; the aggregate reads
//! `reason (detail), reason (detail)` in Kubernetes' order: baseline checks by ID, then
//! restricted ones, where a restricted check replaces the baseline check it overrides.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{ContainerPort, PodSecurityContext, PodSpec, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// How strict, for comparisons (privileged < baseline < restricted).
    pub fn rank(self) -> u8 {
        match self {
            Level::Privileged => 0,
            Level::Baseline => 1,
            Level::Restricted => 2,
        }
    }
}

/// A policy version: `v1.<minor>` or `latest` (newer than every version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Minor(u32),
    Latest,
}

impl Version {
    /// `latest` or `v1.x` (Kubernetes' `^v1\.([0-9]|[1-9][0-9]*)$`).
    pub fn parse(s: &str) -> Option<Version> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        let valid = !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
            && (minor == "0" || !minor.starts_with('0'));
        if !valid {
            return None;
        }
        minor.parse().ok().map(Version::Minor)
    }

    fn at_least(self, minor: u32) -> bool {
        match self {
            Version::Latest => true,
            Version::Minor(m) => m >= minor,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(m) => write!(f, "v1.{m}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

/// Kubernetes' `ForbiddenDetail()` of the aggregate: `reason (detail), reason (detail)`.
pub fn aggregate_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Kubernetes' `ForbiddenReason()` of the aggregate: the reasons alone.
pub fn aggregate_reason(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

type CheckFn = fn(&ObjectMeta, &PodSpec) -> Option<Violation>;

struct Check {
    id: &'static str,
    level: Level,
    /// (minimum minor version, implementation), oldest first.
    versions: &'static [(u32, CheckFn)],
    /// Baseline checks this restricted check replaces (when it applies).
    overrides: &'static [&'static str],
}

impl Check {
    fn at(&self, version: Version) -> Option<CheckFn> {
        self.versions
            .iter()
            .rev()
            .find(|(min, _)| version.at_least(*min))
            .map(|(_, f)| *f)
    }
}

static CHECKS: &[Check] = &[
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[(0, app_armor_profile)],
        overrides: &[],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[(0, capabilities_baseline)],
        overrides: &[],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[(0, host_namespaces)],
        overrides: &[],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[(0, host_path_volumes)],
        overrides: &[],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[(0, host_ports)],
        overrides: &[],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[(0, privileged)],
        overrides: &[],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[(0, proc_mount)],
        overrides: &[],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[(0, se_linux_options_1_0), (31, se_linux_options_1_31)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[(0, seccomp_baseline_1_0), (19, seccomp_baseline_1_19)],
        overrides: &[],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            (0, sysctls_1_0),
            (27, sysctls_1_27),
            (29, sysctls_1_29),
            (32, sysctls_1_32),
        ],
        overrides: &[],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[(0, windows_host_process)],
        overrides: &[],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            (8, allow_privilege_escalation_1_8),
            (25, allow_privilege_escalation_1_25),
        ],
        overrides: &[],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            (22, capabilities_restricted_1_22),
            (25, capabilities_restricted_1_25),
        ],
        overrides: &["capabilities_baseline"],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[(0, restricted_volumes)],
        overrides: &["hostPathVolumes"],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[(0, run_as_non_root)],
        overrides: &[],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[(23, run_as_user)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[(19, seccomp_restricted_1_19), (25, seccomp_restricted_1_25)],
        overrides: &["seccompProfile_baseline"],
    },
];

/// Evaluates a pod against a level and version: the violations, in Kubernetes' order
/// (empty: allowed).
pub fn evaluate(lv: LevelVersion, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let mut applicable: Vec<(&Check, CheckFn)> = CHECKS
        .iter()
        .filter(|c| c.level == Level::Baseline || lv.level == Level::Restricted)
        .filter_map(|c| c.at(lv.version).map(|f| (c, f)))
        .collect();
    let overridden: Vec<&str> = applicable
        .iter()
        .flat_map(|(c, _)| c.overrides.iter().copied())
        .collect();
    applicable.retain(|(c, _)| !overridden.contains(&c.id));
    // Baseline checks first, then restricted, each by ID (byte order, as Go sorts).
    applicable.sort_by(|(a, _), (b, _)| {
        (a.level == Level::Restricted, a.id).cmp(&(b.level == Level::Restricted, b.id))
    });
    applicable
        .into_iter()
        .filter_map(|(_, f)| f(meta, spec))
        .collect()
}

// ---- helpers ----------------------------------------------------------------------------

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", inner.join("\", \""))
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `container(s) "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// A container of any kind, as the checks see it.
struct C<'a> {
    name: &'a str,
    sc: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

/// Init containers, containers and ephemeral containers, in that order.
fn containers(spec: &PodSpec) -> Vec<C<'_>> {
    let mut out: Vec<C<'_>> = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        out.push(C {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        out.push(C {
            name: &c.name,
            sc: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    out
}

fn pod_sc(spec: &PodSpec) -> Option<&PodSecurityContext> {
    spec.security_context.as_ref()
}

fn annotations(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.annotations.as_ref().unwrap_or(&EMPTY)
}

fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|o| o.name == "windows")
}

/// `pod and containers "a" must not …`: who set a forbidden value.
fn setters(pod: bool, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    if pod {
        out.push("pod".to_string());
    }
    if !names.is_empty() {
        out.push(containers_phrase(names));
    }
    out
}

// ---- baseline -----------------------------------------------------------------------------

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor_profile(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut bad_values: BTreeSet<String> = BTreeSet::new();
    let mut bad_setters: Vec<String> = Vec::new();
    if let Some(p) = pod_sc(spec).and_then(|s| s.app_armor_profile.as_ref())
        && !allowed_type(&p.type_)
    {
        bad_setters.push("pod".into());
        bad_values.insert(p.type_.clone());
    }
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter_map(|c| {
            let p = c.sc?.app_armor_profile.as_ref()?;
            (!allowed_type(&p.type_)).then(|| {
                bad_values.insert(p.type_.clone());
                c.name
            })
        })
        .collect();
    if !bad.is_empty() {
        bad_setters.push(containers_phrase(&bad));
    }
    let mut bad_annotations: Vec<String> = annotations(meta)
        .iter()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    bad_annotations.sort();
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !bad_annotations.is_empty() {
        bad_setters.push(pluralize("annotation", "annotations", bad_annotations.len()).into());
        values.extend(bad_annotations);
    }
    if bad_setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            bad_setters.join(" and "),
            join_quote(&values)
        ),
    )
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut caps: BTreeSet<&str> = BTreeSet::new();
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| {
            let added =
                c.sc.and_then(|s| s.capabilities.as_ref())
                    .and_then(|c| c.add.as_ref());
            let mut valid = true;
            for cap in added.into_iter().flatten() {
                if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                    valid = false;
                    caps.insert(cap);
                }
            }
            !valid
        })
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<&str> = caps.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn host_namespaces(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut used = Vec::new();
    if spec.host_network == Some(true) {
        used.push("hostNetwork=true");
    }
    if spec.host_pid == Some(true) {
        used.push("hostPID=true");
    }
    if spec.host_ipc == Some(true) {
        used.push("hostIPC=true");
    }
    if used.is_empty() {
        return None;
    }
    violation("host namespaces", used.join(", "))
}

fn host_path_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let names: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    // Go's string set: sorted as strings.
    let mut ports: BTreeSet<String> = BTreeSet::new();
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| {
            let mut valid = true;
            for p in c.ports {
                if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
                    valid = false;
                    ports.insert(hp.to_string());
                }
            }
            !valid
        })
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| c.sc.and_then(|s| s.privileged) == Some(true))
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut types: BTreeSet<&str> = BTreeSet::new();
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| match c.sc.and_then(|s| s.proc_mount.as_deref()) {
            Some(t) if t != "Default" => {
                types.insert(t);
                true
            }
            _ => false,
        })
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let types: Vec<&str> = types.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

fn se_linux_options(spec: &PodSpec, allowed: &[&str]) -> Option<Violation> {
    let mut bad_types: BTreeSet<String> = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |o: &k8s_openapi::api::core::v1::SELinuxOptions| {
        let mut ok = true;
        let t = o.type_.as_deref().unwrap_or("");
        if !allowed.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if o.user.as_deref().is_some_and(|u| !u.is_empty()) {
            ok = false;
            set_user = true;
        }
        if o.role.as_deref().is_some_and(|r| !r.is_empty()) {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_bad = pod_sc(spec)
        .and_then(|s| s.se_linux_options.as_ref())
        .is_some_and(|o| !valid(o));
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| {
            c.sc.and_then(|s| s.se_linux_options.as_ref())
                .is_some_and(|o| !valid(o))
        })
        .map(|c| c.name)
        .collect();
    let who = setters(pod_bad, &bad);
    if who.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            data.join("; ")
        ),
    )
}

fn se_linux_options_1_0(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    se_linux_options(
        spec,
        &["", "container_t", "container_init_t", "container_kvm_t"],
    )
}

fn se_linux_options_1_31(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    se_linux_options(
        spec,
        &[
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ],
    )
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn valid_seccomp(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

/// Before 1.19 seccomp profiles were annotations.
fn seccomp_baseline_1_0(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let a = annotations(meta);
    let mut bad: BTreeSet<String> = BTreeSet::new();
    if let Some(v) = a.get(SECCOMP_POD_ANNOTATION)
        && !valid(v)
    {
        bad.insert(format!("{SECCOMP_POD_ANNOTATION}={v:?}"));
    }
    for c in containers(spec) {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name);
        if let Some(v) = a.get(&key)
            && !valid(v)
        {
            bad.insert(format!("{key}={v:?}"));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let list: Vec<String> = bad.into_iter().collect();
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", list.len()),
            list.join(", ")
        ),
    )
}

fn seccomp_baseline_1_19(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut values: BTreeSet<String> = BTreeSet::new();
    let pod_bad = match pod_sc(spec).and_then(|s| s.seccomp_profile.as_ref()) {
        Some(p) if !valid_seccomp(&p.type_) => {
            values.insert(p.type_.clone());
            true
        }
        _ => false,
    };
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| match c.sc.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !valid_seccomp(&p.type_) => {
                values.insert(p.type_.clone());
                true
            }
            _ => false,
        })
        .map(|c| c.name)
        .collect();
    let who = setters(pod_bad, &bad);
    if who.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            who.join(" and "),
            join_quote(&values)
        ),
    )
}

const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls(spec: &PodSpec, allowed: &[&[&str]]) -> Option<Violation> {
    let bad: Vec<&str> = pod_sc(spec)
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|n| !allowed.iter().any(|set| set.contains(n)))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn sysctls_1_0(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0])
}
fn sysctls_1_27(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27])
}
fn sysctls_1_29(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}
fn sysctls_1_32(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(
        spec,
        &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32],
    )
}

fn windows_host_process(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| {
            c.sc.and_then(|s| s.windows_options.as_ref())
                .and_then(|w| w.host_process)
                == Some(true)
        })
        .map(|c| c.name)
        .collect();
    let pod = pod_sc(spec)
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true);
    let who = setters(pod, &bad);
    if who.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            who.join(" and ")
        ),
    )
}

// ---- restricted ---------------------------------------------------------------------------

fn allow_privilege_escalation_1_8(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| c.sc.and_then(|s| s.allow_privilege_escalation) != Some(false))
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

/// Windows pods are exempt from 1.25 on (the API refuses the field for them).
fn allow_privilege_escalation_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    allow_privilege_escalation_1_8(meta, spec)
}

fn capabilities_restricted_1_22(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut missing_drop_all: Vec<&str> = Vec::new();
    let mut adding: Vec<&str> = Vec::new();
    let mut forbidden: BTreeSet<&str> = BTreeSet::new();
    let cs = containers(spec);
    for c in &cs {
        let Some(caps) = c.sc.and_then(|s| s.capabilities.as_ref()) else {
            missing_drop_all.push(c.name);
            continue;
        };
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            missing_drop_all.push(c.name);
        }
        let mut added_forbidden = false;
        for a in caps.add.iter().flatten() {
            if a != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden.insert(a);
            }
        }
        if added_forbidden {
            adding.push(c.name);
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<&str> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn capabilities_restricted_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    capabilities_restricted_1_22(meta, spec)
}

fn restricted_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad: Vec<&str> = Vec::new();
    let mut types: BTreeSet<&str> = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some()
        {
            continue;
        }
        bad.push(&v.name);
        let t = [
            (v.host_path.is_some(), "hostPath"),
            (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
            (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
            (v.git_repo.is_some(), "gitRepo"),
            (v.nfs.is_some(), "nfs"),
            (v.iscsi.is_some(), "iscsi"),
            (v.glusterfs.is_some(), "glusterfs"),
            (v.rbd.is_some(), "rbd"),
            (v.flex_volume.is_some(), "flexVolume"),
            (v.cinder.is_some(), "cinder"),
            (v.cephfs.is_some(), "cephfs"),
            (v.flocker.is_some(), "flocker"),
            (v.fc.is_some(), "fc"),
            (v.azure_file.is_some(), "azureFile"),
            (v.vsphere_volume.is_some(), "vsphereVolume"),
            (v.quobyte.is_some(), "quobyte"),
            (v.azure_disk.is_some(), "azureDisk"),
            (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
            (v.portworx_volume.is_some(), "portworxVolume"),
            (v.scale_io.is_some(), "scaleIO"),
            (v.storageos.is_some(), "storageos"),
        ]
        .into_iter()
        .find(|(set, _)| *set)
        .map(|(_, t)| t)
        .unwrap_or("unknown");
        types.insert(t);
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<&str> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let pod = pod_sc(spec).and_then(|s| s.run_as_non_root);
    let pod_bad = pod == Some(false);
    let pod_true = pod == Some(true);
    let cs = containers(spec);
    let mut explicit: Vec<&str> = Vec::new();
    let mut implicit: Vec<&str> = Vec::new();
    for c in &cs {
        match c.sc.and_then(|s| s.run_as_non_root) {
            Some(false) => explicit.push(c.name),
            Some(true) => {}
            None if !pod_true => implicit.push(c.name),
            None => {}
        }
    }
    let who = setters(pod_bad, &explicit);
    if !who.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                who.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let pod = pod_sc(spec).and_then(|s| s.run_as_user) == Some(0);
    let cs = containers(spec);
    let bad: Vec<&str> = cs
        .iter()
        .filter(|c| c.sc.and_then(|s| s.run_as_user) == Some(0))
        .map(|c| c.name)
        .collect();
    let who = setters(pod, &bad);
    if who.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", who.join(" and ")),
    )
}

fn seccomp_restricted_1_19(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut values: BTreeSet<String> = BTreeSet::new();
    let (mut pod_bad, mut pod_set) = (false, false);
    if let Some(p) = pod_sc(spec).and_then(|s| s.seccomp_profile.as_ref()) {
        if valid_seccomp(&p.type_) {
            pod_set = true;
        } else {
            pod_bad = true;
            values.insert(p.type_.clone());
        }
    }
    let cs = containers(spec);
    let mut explicit: Vec<&str> = Vec::new();
    let mut implicit: Vec<&str> = Vec::new();
    for c in &cs {
        match c.sc.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !valid_seccomp(&p.type_) => {
                explicit.push(c.name);
                values.insert(p.type_.clone());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(c.name),
            None => {}
        }
    }
    let who = setters(pod_bad, &explicit);
    if !who.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                who.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn seccomp_restricted_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    seccomp_restricted_1_19(meta, spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn lv(level: Level, version: Version) -> LevelVersion {
        LevelVersion { level, version }
    }

    fn parse(pod: Value) -> (ObjectMeta, PodSpec) {
        let meta = serde_json::from_value(pod.get("metadata").cloned().unwrap_or(json!({})))
            .expect("metadata");
        let mut spec = pod.get("spec").cloned().unwrap_or(json!({}));
        if spec.get("containers").is_none() {
            spec["containers"] = json!([]);
        }
        (meta, serde_json::from_value(spec).expect("spec"))
    }

    /// The aggregate detail of a pod at `level:latest` ("" when allowed).
    fn detail(level: Level, pod: Value) -> String {
        let (m, s) = parse(pod);
        aggregate_detail(&evaluate(lv(level, Version::Latest), &m, &s))
    }

    fn baseline(spec: Value) -> String {
        detail(Level::Baseline, json!({"spec": spec}))
    }

    /// A pod that satisfies restricted, to change one field at a time.
    fn restricted_ok() -> Value {
        json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
               "containers": [{"name": "c", "image": "i", "securityContext": {
                   "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]})
    }

    fn restricted(spec: Value) -> String {
        detail(Level::Restricted, json!({"spec": spec}))
    }

    #[test]
    fn versions_parse_as_kubernetes() {
        assert_eq!(Version::parse("latest"), Some(Version::Latest));
        assert_eq!(Version::parse("v1.25"), Some(Version::Minor(25)));
        assert_eq!(Version::parse("v1.0"), Some(Version::Minor(0)));
        for bad in ["v1.025", "1.25", "v2.1", "v1.", "v1.x", "Latest"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert_eq!(
            lv(Level::Restricted, Version::Latest).to_string(),
            "restricted:latest"
        );
        assert_eq!(
            lv(Level::Baseline, Version::Minor(24)).to_string(),
            "baseline:v1.24"
        );
    }

    #[test]
    fn a_default_pod_passes_baseline_and_privileged_allows_anything() {
        assert_eq!(
            baseline(json!({"containers": [{"name": "c", "image": "i"}]})),
            ""
        );
        let (m, s) = parse(json!({"spec": {"hostNetwork": true, "containers": []}}));
        assert!(evaluate(lv(Level::Privileged, Version::Latest), &m, &s).is_empty());
    }

    #[test]
    fn host_namespaces() {
        assert_eq!(
            baseline(json!({"hostNetwork": true, "hostPID": true, "hostIPC": true})),
            "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"
        );
        assert_eq!(baseline(json!({"hostNetwork": false})), "");
    }

    #[test]
    fn privileged_containers_of_every_kind() {
        let sc = json!({"privileged": true});
        assert_eq!(
            baseline(
                json!({"initContainers": [{"name": "i", "securityContext": sc}],
                            "containers": [{"name": "c", "securityContext": sc}],
                            "ephemeralContainers": [{"name": "e", "securityContext": sc}]})
            ),
            r#"privileged (containers "i", "c", "e" must not set securityContext.privileged=true)"#
        );
    }

    #[test]
    fn host_process() {
        assert_eq!(
            baseline(
                json!({"securityContext": {"windowsOptions": {"hostProcess": true}},
                            "containers": [{"name": "c", "securityContext": {"windowsOptions": {"hostProcess": true}}}]})
            ),
            r#"hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)"#
        );
    }

    #[test]
    fn baseline_capabilities() {
        assert_eq!(
            baseline(json!({"containers": [
                {"name": "a", "securityContext": {"capabilities": {"add": ["NET_RAW", "CHOWN", "NET_ADMIN"]}}},
                {"name": "b", "securityContext": {"capabilities": {"add": ["KILL"]}}}]})),
            r#"non-default capabilities (container "a" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add)"#
        );
    }

    #[test]
    fn host_path_volumes_and_host_ports() {
        assert_eq!(
            baseline(
                json!({"volumes": [{"name": "run", "hostPath": {"path": "/run"}},
                                        {"name": "cfg", "configMap": {"name": "x"}},
                                        {"name": "sys", "hostPath": {"path": "/sys"}}]})
            ),
            r#"hostPath volumes (volumes "run", "sys")"#
        );
        assert_eq!(
            baseline(
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 9100}, {"containerPort": 81, "hostPort": 80}]}]})
            ),
            r#"hostPort (container "c" uses hostPorts 80, 9100)"#
        );
    }

    #[test]
    fn app_armor_fields_and_annotations() {
        assert_eq!(
            baseline(json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}})),
            r#"forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")"#
        );
        assert_eq!(
            detail(
                Level::Baseline,
                json!({"metadata": {"annotations": {
                    "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
                    "container.apparmor.security.beta.kubernetes.io/b": "runtime/default"}},
                       "spec": {"containers": [{"name": "c", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}})
            ),
            r#"forbidden AppArmor profiles (container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/a="unconfined"")"#
        );
        assert_eq!(
            baseline(
                json!({"securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}})
            ),
            ""
        );
    }

    #[test]
    fn se_linux_options_by_version() {
        let spec = json!({"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}},
                          "containers": [{"name": "c", "securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "u", "role": "r"}}}]});
        assert_eq!(
            baseline(spec.clone()),
            r#"seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set)"#
        );
        let (m, s) = parse(json!({"spec": spec}));
        assert_eq!(
            aggregate_detail(&evaluate(lv(Level::Baseline, Version::Minor(30)), &m, &s)),
            r#"seLinuxOptions (pod and container "c" set forbidden securityContext.seLinuxOptions: types "container_engine_t", "spc_t"; user may not be set; role may not be set)"#
        );
    }

    #[test]
    fn proc_mount_and_sysctls() {
        assert_eq!(
            baseline(
                json!({"containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]})
            ),
            r#"procMount (container "c" must not set securityContext.procMount to "Unmasked")"#
        );
        let spec = json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"},
                                                           {"name": "kernel.msgmax", "value": "1"}]}});
        assert_eq!(baseline(spec.clone()), "forbidden sysctls (kernel.msgmax)");
        let (m, s) = parse(json!({"spec": spec}));
        assert_eq!(
            aggregate_detail(&evaluate(lv(Level::Baseline, Version::Minor(31)), &m, &s)),
            "forbidden sysctls (net.ipv4.tcp_rmem, kernel.msgmax)"
        );
    }

    #[test]
    fn seccomp_baseline_fields_and_old_annotations() {
        assert_eq!(
            baseline(json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}})),
            r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
        );
        let (m, s) = parse(
            json!({"metadata": {"annotations": {SECCOMP_POD_ANNOTATION: "unconfined"}},
                                  "spec": {"containers": []}}),
        );
        assert_eq!(
            aggregate_detail(&evaluate(lv(Level::Baseline, Version::Minor(18)), &m, &s)),
            r#"seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")"#
        );
        assert!(evaluate(lv(Level::Baseline, Version::Latest), &m, &s).is_empty());
    }

    #[test]
    fn restricted_pod_passes_and_each_field_is_required() {
        assert_eq!(restricted(restricted_ok()), "");
        assert_eq!(
            restricted(json!({"containers": [{"name": "c", "image": "i"}]})),
            concat!(
                r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
                r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
                r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
                r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
            )
        );
    }

    #[test]
    fn restricted_capabilities_allow_only_net_bind_service() {
        let mut spec = restricted_ok();
        spec["containers"][0]["securityContext"]["capabilities"]["add"] =
            json!(["NET_BIND_SERVICE", "SYS_ADMIN"]);
        assert_eq!(
            restricted(spec),
            r#"unrestricted capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#,
            "the baseline capabilities check is overridden by the restricted one"
        );
    }

    #[test]
    fn restricted_volumes_override_host_path() {
        let mut spec = restricted_ok();
        spec["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}, {"name": "g", "gitRepo": {"repository": "r"}},
                                 {"name": "ok", "emptyDir": {}}]);
        assert_eq!(
            restricted(spec),
            r#"restricted volume types (volumes "h", "g" use restricted volume types "gitRepo", "hostPath")"#
        );
    }

    #[test]
    fn run_as_non_root_run_as_user_and_seccomp() {
        let mut spec = restricted_ok();
        spec["securityContext"]["runAsNonRoot"] = json!(false);
        spec["securityContext"]["runAsUser"] = json!(0);
        spec["containers"][0]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"});
        assert_eq!(
            restricted(spec),
            concat!(
                r#"runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), "#,
                r#"runAsUser=0 (pod must not set runAsUser=0), "#,
                r#"seccompProfile (container "c" must not set securityContext.seccompProfile.type to "Unconfined")"#
            )
        );
    }

    #[test]
    fn run_as_user_only_from_1_23_and_windows_exemptions_from_1_25() {
        let mut spec = restricted_ok();
        spec["securityContext"]["runAsUser"] = json!(0);
        let (m, s) = parse(json!({"spec": spec}));
        assert!(evaluate(lv(Level::Restricted, Version::Minor(22)), &m, &s).is_empty());
        assert_eq!(
            evaluate(lv(Level::Restricted, Version::Minor(23)), &m, &s).len(),
            1
        );
        let (m, s) = parse(
            json!({"spec": {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true},
                                           "containers": [{"name": "c"}]}}),
        );
        assert!(evaluate(lv(Level::Restricted, Version::Minor(25)), &m, &s).is_empty());
        assert_eq!(
            evaluate(lv(Level::Restricted, Version::Minor(24)), &m, &s).len(),
            3
        );
    }
}
