//! Service cluster IPs and node ports, allocated by the apiserver as Kubernetes does.
//!
//! Every allocated value is one etcd key (`/registry/kadm/serviceips/<ip>`,
//! `/registry/kadm/servicenodeports/<port>`) written in the same transaction as the
//! Service that holds it ([`crate::storage::Store::write_claiming`]): a value is never
//! handed out twice, even by two apiservers at once, and no crash leaves a Service and
//! its values disagreeing. [`repair`] reconciles Services written before this existed;
//! [`kubernetes`] keeps the `default/kubernetes` Service.

pub mod kubernetes;
pub mod ranges;
pub mod repair;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use kadm_apimachinery::{ApiError, Cause, ResourceInfo, meta};
use serde_json::{Value, json};

use crate::storage::{ClaimOutcome, MainWrite, Store, WriteOutcome};
pub use ranges::{IpRange, PortRange};

pub const IP_PREFIX: &str = "/registry/kadm/serviceips/";
pub const PORT_PREFIX: &str = "/registry/kadm/servicenodeports/";
/// Attempts at a write whose randomly picked values were taken meanwhile.
const ATTEMPTS: usize = 4;
/// Most allocation keys read when a pick must avoid the ones taken.
const LIST_LIMIT: i64 = 1 << 21;

/// The ranges Services get values from (`--service-cluster-ip-range`,
/// `--service-node-port-range`).
#[derive(Debug, Clone)]
pub struct Allocator {
    pub ips: IpRange,
    pub ports: PortRange,
}

/// Whether `res` is core/v1 Services, whose writes go through this module.
pub fn applies(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.plural == "services"
}

pub fn ip_key(ip: IpAddr) -> String {
    format!("{IP_PREFIX}{ip}")
}

pub fn port_key(port: i64) -> String {
    format!("{PORT_PREFIX}{port}")
}

/// What a write claims and releases besides the Service itself.
#[derive(Debug, Default)]
pub struct Plan {
    pub claims: Vec<(String, Vec<u8>)>,
    pub releases: Vec<String>,
    /// Claimed keys the user asked for by value: the field and value a 422 names.
    requested: BTreeMap<String, (String, Value)>,
}

/// The values allocated under `prefix` (each key is `<prefix><value>`).
async fn held<T: std::str::FromStr + Eq + std::hash::Hash>(
    store: &Store,
    prefix: &str,
) -> Result<HashSet<T>, ApiError> {
    Ok(store
        .list_keys(prefix, LIST_LIMIT)
        .await?
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(prefix)?.parse().ok())
        .collect())
}

fn spec_str<'a>(svc: &'a Value, field: &str) -> &'a str {
    svc.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn svc_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

/// The cluster IPs a stored Service holds (none for headless and ExternalName).
pub fn held_ips(svc: &Value) -> Vec<IpAddr> {
    if !needs_cluster_ip(svc) {
        return Vec::new();
    }
    let list: Vec<&str> = match svc.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        Some(l) if !l.is_empty() => l.iter().filter_map(Value::as_str).collect(),
        _ => vec![spec_str(svc, "clusterIP")],
    };
    list.into_iter().filter_map(|s| s.parse().ok()).collect()
}

/// The node ports a stored Service holds (port nodePorts and healthCheckNodePort).
pub fn held_ports(svc: &Value) -> Vec<i64> {
    let mut out: Vec<i64> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
        .filter(|p| *p > 0)
        .collect();
    if let Some(h) = svc
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|h| *h > 0)
    {
        out.push(h);
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn spec_mut(svc: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    svc["spec"].as_object_mut().expect("spec is an object")
}

/// On update, keeps what the Service was given when the client left it out (a
/// `kubectl replace` of a file without `clusterIP`), and refuses changes to the cluster
/// IP, as Kubernetes' `patchAllocatedValues` and update validation do.
pub fn prepare_update(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let old_ip = spec_str(old, "clusterIP").to_string();
        let old_ips = old.pointer("/spec/clusterIPs").cloned();
        let new_ip = spec_str(new, "clusterIP").to_string();
        let new_ips = new.pointer("/spec/clusterIPs").cloned();
        let spec = spec_mut(new);
        if new_ip.is_empty() && !old_ip.is_empty() {
            spec.insert("clusterIP".into(), json!(old_ip));
            if new_ips
                .as_ref()
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
                && let Some(ips) = &old_ips
            {
                spec.insert("clusterIPs".into(), ips.clone());
            }
        } else if new_ip != old_ip && new_ips == old_ips {
            // Only clusterIP was edited: clusterIPs follows it (NormalizeClusterIPs).
            spec.insert("clusterIPs".into(), json!([new_ip]));
        }
        for f in ["ipFamilies", "ipFamilyPolicy"] {
            if !spec.contains_key(f)
                && let Some(v) = old.pointer(&format!("/spec/{f}"))
            {
                spec.insert(f.into(), v.clone());
            }
        }
        let before: Vec<Value> = old
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| vec![json!(old_ip)]);
        let after = new
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !old_ip.is_empty() && before.first() != after.first() {
            let field = if after.is_empty() {
                ("primary clusterIP can not be unset", json!([]))
            } else {
                ("may not change once set", Value::Array(after.clone()))
            };
            return Err(invalid(
                new,
                Cause::invalid("spec.clusterIPs[0]", &field.1, field.0),
            ));
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let old_ports: Vec<Value> = old
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for p in spec_mut(new)
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            let same = |o: &&Value| {
                o.get("port") == p.get("port")
                    && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        == p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
            };
            if let Some(np) = old_ports.iter().find(same).and_then(|o| o.get("nodePort")) {
                p["nodePort"] = np.clone();
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && new
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && let Some(h) = old.pointer("/spec/healthCheckNodePort").cloned()
    {
        spec_mut(new).insert("healthCheckNodePort".into(), h);
    }
    Ok(())
}

fn invalid(svc: &Value, cause: Cause) -> ApiError {
    ApiError::invalid("", "Service", meta::name(svc), vec![cause])
}

fn owner(svc: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "namespace": meta::namespace(svc),
        "name": meta::name(svc),
        "uid": meta::uid(svc),
    }))
    .unwrap_or_default()
}

impl Allocator {
    pub fn from_flags(ip_range: &str, port_range: &str) -> Result<Allocator, String> {
        let mut cidrs = ip_range.split(',').map(str::trim).filter(|s| !s.is_empty());
        let first = cidrs.next().ok_or_else(|| {
            "--service-cluster-ip-range is empty; set a cidr such as 10.96.0.0/12".to_string()
        })?;
        let ips = IpRange::parse(first)?;
        if let Some(second) = cidrs.next() {
            tracing::warn!(
                secondary = second,
                "dual-stack service ranges are not supported yet; services get addresses from the first range only"
            );
        }
        Ok(Allocator {
            ips,
            ports: PortRange::parse(port_range)?,
        })
    }

    /// Fills in the values `new` is given (cluster IP, IP family fields, node ports,
    /// health check node port) and what to claim and release for the change from `old`.
    /// Random picks avoid `taken`.
    pub fn plan(
        &self,
        old: Option<&Value>,
        new: &mut Value,
        taken_ips: &HashSet<IpAddr>,
        taken_ports: &HashSet<u16>,
    ) -> Result<Plan, ApiError> {
        let mut plan = Plan::default();
        let value = owner(new);
        let old_ips: Vec<IpAddr> = old.map(held_ips).unwrap_or_default();
        let old_ports: Vec<i64> = old.map(held_ports).unwrap_or_default();
        let had_ip =
            old.is_some_and(|o| needs_cluster_ip(o) && !spec_str(o, "clusterIP").is_empty());

        if needs_cluster_ip(new) && !had_ip {
            let requested = match new.pointer("/spec/clusterIPs").and_then(Value::as_array) {
                Some(l) if !l.is_empty() => l[0].as_str().unwrap_or("").to_string(),
                _ => spec_str(new, "clusterIP").to_string(),
            };
            let family = self.ips.family();
            let spec = spec_mut(new);
            if requested == "None" {
                spec.insert("clusterIP".into(), json!("None"));
                spec.insert("clusterIPs".into(), json!(["None"]));
            } else if requested.is_empty() {
                let ip = self.ips.pick(taken_ips).ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                spec.insert("clusterIP".into(), json!(ip.to_string()));
                spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                plan.claims.push((ip_key(ip), value.clone()));
            } else {
                let Ok(ip) = requested.parse::<IpAddr>() else {
                    return Err(invalid(
                        new,
                        Cause::invalid(
                            "spec.clusterIPs[0]",
                            &json!(requested),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ),
                    ));
                };
                let ips_value = json!([requested]);
                if self.ips.offset_of(ip).is_none() {
                    return Err(invalid(
                        new,
                        Cause::invalid(
                            "spec.clusterIPs",
                            &ips_value,
                            format!(
                                "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}",
                                self.ips.cidr()
                            ),
                        ),
                    ));
                }
                spec.insert("clusterIP".into(), json!(requested));
                spec.insert("clusterIPs".into(), ips_value.clone());
                let key = ip_key(ip);
                plan.requested.insert(
                    key.clone(),
                    (
                        "spec.clusterIPs".into(),
                        json!(format!(
                            "failed to allocate IP {requested}: provided IP is already allocated"
                        )),
                    ),
                );
                plan.claims.push((key, value.clone()));
            }
            spec.entry("ipFamilies").or_insert_with(|| json!([family]));
            spec.entry("ipFamilyPolicy")
                .or_insert_with(|| json!("SingleStack"));
        }
        if !needs_cluster_ip(new) {
            // Changing to ExternalName drops the cluster IP fields (dropTypeDependentFields).
            let spec = spec_mut(new);
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(f);
            }
        }
        let new_ips = held_ips(new);
        for ip in &old_ips {
            if !new_ips.contains(ip) {
                plan.releases.push(ip_key(*ip));
            }
        }

        // Node ports.
        let ty = svc_type(new).to_string();
        let allocate_ports = needs_node_ports(new);
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
            spec_mut(new)
                .entry("externalTrafficPolicy")
                .or_insert_with(|| json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            spec_mut(new)
                .entry("allocateLoadBalancerNodePorts")
                .or_insert_with(|| json!(true));
        }
        let mut taken_ports = taken_ports.clone();
        let mut mine: BTreeMap<i64, ()> = BTreeMap::new();
        let mut by_port: BTreeMap<i64, i64> = BTreeMap::new();
        let node_port_types = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
        let ports_len = new
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for i in 0..ports_len {
            let p = &new["spec"]["ports"][i];
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let np = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            if np != 0 && !node_port_types {
                return Err(invalid(
                    new,
                    Cause {
                        reason: "FieldValueForbidden",
                        message: format!("Forbidden: may not be used when `type` is '{ty}'"),
                        field: format!("spec.ports[{i}].nodePort"),
                    },
                ));
            }
            if np == 0 {
                if !allocate_ports {
                    continue;
                }
                let chosen = match by_port.get(&port) {
                    Some(&same) => same,
                    None => {
                        let picked = self.ports.pick(&taken_ports).ok_or_else(|| {
                            ApiError::internal("failed to allocate a nodePort: range is full")
                        })?;
                        taken_ports.insert(picked);
                        i64::from(picked)
                    }
                };
                new["spec"]["ports"][i]["nodePort"] = json!(chosen);
                by_port.insert(port, chosen);
                mine.insert(chosen, ());
                continue;
            }
            if !self.ports.contains(np) {
                return Err(invalid(
                    new,
                    Cause::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        &json!(np),
                        format!(
                            "provided port is not in the valid range. The range of valid ports is {}",
                            self.ports.describe()
                        ),
                    ),
                ));
            }
            by_port.entry(port).or_insert(np);
            if mine.insert(np, ()).is_none() && !old_ports.contains(&np) {
                plan.requested.insert(
                    port_key(np),
                    (format!("spec.ports[{i}].nodePort"), json!(np)),
                );
            }
        }
        if needs_health_check(new) {
            let h = new
                .pointer("/spec/healthCheckNodePort")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if h == 0 {
                let picked = self.ports.pick(&taken_ports).ok_or_else(|| {
                    ApiError::internal("failed to allocate a HealthCheck NodePort 0: range is full")
                })?;
                spec_mut(new).insert("healthCheckNodePort".into(), json!(picked));
                mine.insert(i64::from(picked), ());
            } else if !self.ports.contains(h) {
                return Err(ApiError::internal(format!(
                    "failed to allocate requested HealthCheck NodePort {h}: provided port is not in the valid range. The range of valid ports is {}",
                    self.ports.describe()
                )));
            } else if mine.insert(h, ()).is_none() && !old_ports.contains(&h) {
                plan.requested
                    .insert(port_key(h), ("spec.healthCheckNodePort".into(), json!(h)));
            }
        } else if old.is_some_and(needs_health_check) {
            spec_mut(new).remove("healthCheckNodePort");
        }
        for np in mine.keys() {
            if !old_ports.contains(np) {
                plan.claims.push((port_key(*np), value.clone()));
            }
        }
        for np in &old_ports {
            if !mine.contains_key(np) {
                plan.releases.push(port_key(*np));
            }
        }
        Ok(plan)
    }

    /// The 422 (or 500 for a health check port, as Kubernetes) for requested keys held
    /// by another Service.
    fn taken_error(svc: &Value, plan: &Plan, taken: &[String]) -> Option<ApiError> {
        let key = taken.iter().find(|k| plan.requested.contains_key(*k))?;
        let (field, value) = &plan.requested[key];
        if field == "spec.clusterIPs" {
            let ips = svc
                .pointer("/spec/clusterIPs")
                .cloned()
                .unwrap_or(json!([]));
            return Some(invalid(
                svc,
                Cause::invalid(field.clone(), &ips, value.as_str().unwrap_or_default()),
            ));
        }
        if field == "spec.healthCheckNodePort" {
            return Some(ApiError::internal(format!(
                "failed to allocate requested HealthCheck NodePort {value}: provided port is already allocated"
            )));
        }
        Some(invalid(
            svc,
            Cause::invalid(field.clone(), value, "provided port is already allocated"),
        ))
    }

    /// Values held by any Service now, for picks that must avoid them.
    async fn taken(store: &Store) -> Result<(HashSet<IpAddr>, HashSet<u16>), ApiError> {
        Ok((
            held(store, IP_PREFIX).await?,
            held(store, PORT_PREFIX).await?,
        ))
    }

    /// Writes a Service (create or update: `old` and its revision) with the values it
    /// needs, retrying picks that lost a race. `Conflict` means the Service's own key
    /// moved on (create: exists; update: changed meanwhile).
    pub async fn write(
        &self,
        store: &Store,
        key: &str,
        old: Option<(&Value, i64)>,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<WriteOutcome, ApiError> {
        let wanted = obj.clone();
        let mut taken_ips = HashSet::new();
        let mut taken_ports = HashSet::new();
        for _ in 0..ATTEMPTS {
            *obj = wanted.clone();
            let plan = self.plan(old.map(|o| o.0), obj, &taken_ips, &taken_ports)?;
            if dry_run {
                return Ok(WriteOutcome::Written(old.map_or(0, |o| o.1)));
            }
            let main = match old {
                None => MainWrite::Create(obj),
                Some((_, rev)) => MainWrite::Update(obj, rev),
            };
            match store
                .write_claiming(key, main, &plan.claims, &plan.releases)
                .await?
            {
                ClaimOutcome::Written(rev) => {
                    if !plan.claims.is_empty() || !plan.releases.is_empty() {
                        tracing::info!(
                            service = %format!("{}/{}", meta::namespace(obj), meta::name(obj)),
                            claimed = ?plan.claims.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
                            released = ?plan.releases,
                            "service allocations changed"
                        );
                    }
                    return Ok(WriteOutcome::Written(rev));
                }
                ClaimOutcome::Conflict => return Ok(WriteOutcome::Conflict),
                ClaimOutcome::Taken(keys) => {
                    if let Some(e) = Self::taken_error(obj, &plan, &keys) {
                        return Err(e);
                    }
                    (taken_ips, taken_ports) = Self::taken(store).await?;
                }
            }
        }
        Err(ApiError::internal(
            "failed to allocate service values: other services took them meanwhile; retry",
        ))
    }

    /// Deletes a stored Service and frees what it held, in one transaction.
    pub async fn delete(
        &self,
        store: &Store,
        key: &str,
        current: &Value,
        rev: i64,
    ) -> Result<WriteOutcome, ApiError> {
        let releases = release_keys(current);
        match store
            .write_claiming(key, MainWrite::Delete(rev), &[], &releases)
            .await?
        {
            ClaimOutcome::Written(rev) => Ok(WriteOutcome::Written(rev)),
            _ => Ok(WriteOutcome::Conflict),
        }
    }
}

/// The allocation keys a stored Service holds.
pub fn release_keys(svc: &Value) -> Vec<String> {
    held_ips(svc)
        .into_iter()
        .map(ip_key)
        .chain(held_ports(svc).into_iter().map(port_key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> Allocator {
        Allocator::from_flags("10.96.0.0/12", "30000-32767").expect("flags")
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "default", "uid": "u"}, "spec": spec})
    }

    #[test]
    fn empty_cluster_ip_gets_one_in_range_with_family_fields() {
        let mut s = svc(json!({"ports": [{"port": 80}]}));
        let plan = alloc()
            .plan(None, &mut s, &HashSet::new(), &HashSet::new())
            .expect("plan");
        let ip: IpAddr = s["spec"]["clusterIP"]
            .as_str()
            .expect("ip")
            .parse()
            .expect("ip");
        assert!(alloc().ips.offset_of(ip).is_some_and(|o| o > 1), "{ip}");
        assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["spec"]["ipFamilyPolicy"], json!("SingleStack"));
        assert_eq!(plan.claims.len(), 1);
        assert_eq!(plan.claims[0].0, ip_key(ip));
    }

    #[test]
    fn out_of_range_ip_is_422_with_kubernetes_message() {
        let mut s = svc(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}));
        let e = alloc()
            .plan(None, &mut s, &HashSet::new(), &HashSet::new())
            .expect_err("422");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.causes[0].message,
            "Invalid value: [\"10.0.0.1\"]: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        assert_eq!(e.causes[0].field, "spec.clusterIPs");
    }

    #[test]
    fn headless_and_external_name_claim_nothing() {
        let mut h = svc(json!({"clusterIP": "None"}));
        assert!(
            alloc()
                .plan(None, &mut h, &HashSet::new(), &HashSet::new())
                .expect("plan")
                .claims
                .is_empty()
        );
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut e = svc(json!({"type": "ExternalName", "externalName": "a.example"}));
        assert!(
            alloc()
                .plan(None, &mut e, &HashSet::new(), &HashSet::new())
                .expect("plan")
                .claims
                .is_empty()
        );
        assert!(e["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn node_ports_are_allocated_shared_per_port_and_released_on_type_change() {
        let mut s = svc(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 53, "protocol": "TCP"}, {"name": "b", "port": 53, "protocol": "UDP"},
            {"name": "c", "port": 80, "protocol": "TCP", "nodePort": 30080}]}));
        let plan = alloc()
            .plan(None, &mut s, &HashSet::new(), &HashSet::new())
            .expect("plan");
        let tcp = s["spec"]["ports"][0]["nodePort"].as_i64().expect("np");
        assert_eq!(s["spec"]["ports"][1]["nodePort"].as_i64(), Some(tcp));
        assert!((30000..=32767).contains(&tcp));
        assert_eq!(plan.claims.len(), 3, "{:?}", plan.claims);
        assert!(plan.requested.contains_key(&port_key(30080)));
        let old = s.clone();
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        for p in to_cluster_ip["spec"]["ports"]
            .as_array_mut()
            .expect("ports")
        {
            p.as_object_mut().expect("port").remove("nodePort");
        }
        prepare_update(&old, &mut to_cluster_ip).expect("update");
        let plan = alloc()
            .plan(
                Some(&old),
                &mut to_cluster_ip,
                &HashSet::new(),
                &HashSet::new(),
            )
            .expect("plan");
        assert!(plan.claims.is_empty());
        assert_eq!(plan.releases.len(), 2, "{:?}", plan.releases);
    }

    #[test]
    fn node_port_out_of_range_and_on_cluster_ip_type_are_refused() {
        let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}));
        let e = alloc()
            .plan(None, &mut s, &HashSet::new(), &HashSet::new())
            .expect_err("422");
        assert_eq!(
            e.causes[0].message,
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        let mut c = svc(json!({"ports": [{"port": 80, "nodePort": 30001}]}));
        let e = alloc()
            .plan(None, &mut c, &HashSet::new(), &HashSet::new())
            .expect_err("422");
        assert_eq!(
            e.causes[0].message,
            "Forbidden: may not be used when `type` is 'ClusterIP'"
        );
    }

    #[test]
    fn updates_keep_allocated_values_and_refuse_ip_changes() {
        let old = svc(
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80}]}),
        );
        let mut replaced = svc(json!({"ports": [{"port": 80}]}));
        prepare_update(&old, &mut replaced).expect("kept");
        assert_eq!(replaced["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(replaced["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        let plan = alloc()
            .plan(Some(&old), &mut replaced, &HashSet::new(), &HashSet::new())
            .expect("plan");
        assert!(plan.claims.is_empty() && plan.releases.is_empty());
        let mut changed = old.clone();
        changed["spec"]["clusterIP"] = json!("10.96.0.11");
        let e = prepare_update(&old, &mut changed).expect_err("immutable");
        assert_eq!(e.causes[0].field, "spec.clusterIPs[0]");
        assert_eq!(
            e.causes[0].message,
            "Invalid value: [\"10.96.0.11\"]: may not change once set"
        );
    }

    #[test]
    fn health_check_node_port_for_local_load_balancers() {
        let mut s = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        );
        let plan = alloc()
            .plan(None, &mut s, &HashSet::new(), &HashSet::new())
            .expect("plan");
        let h = s["spec"]["healthCheckNodePort"].as_i64().expect("hc");
        assert!((30000..=32767).contains(&h));
        assert_ne!(Some(h), s["spec"]["ports"][0]["nodePort"].as_i64());
        assert_eq!(plan.claims.len(), 3);
        assert_eq!(release_keys(&s).len(), 3);
    }
}
