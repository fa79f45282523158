//! The arithmetic of a rollout, without I/O: maxSurge/maxUnavailable, how far the new
//! ReplicaSet may grow, which old ReplicaSets shrink by how much, and how a scaled
//! Deployment spreads the change over its ReplicaSets. Each function is Kubernetes' own
//! rule (`deployment/util`, `rolling.go`, `sync.go`).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::annotations;
use super::replicasets::{
    available_replicas, by_creation, by_size_newer, by_size_older, deployment_replicas, is_active,
    spec_replicas, sum_available, sum_spec,
};

pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const RECREATE: &str = "Recreate";

/// The strategy type; the apiserver defaults it to `RollingUpdate`.
pub fn strategy(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or(ROLLING_UPDATE)
}

pub fn is_rolling(d: &Deployment) -> bool {
    strategy(d) == ROLLING_UPDATE
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`: an int as it is, `"N%"` of `total` rounded
/// up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ));
            };
            let p: i64 = p
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = p * i64::from(total);
            let v = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v)
                .map_err(|_| format!("invalid value for IntOrString: {s:?} out of range"))
        }
    }
}

/// Kubernetes' `ResolveFenceposts`: surge rounds up, unavailable rounds down, and both zero
/// becomes unavailable 1 (a rollout must be able to move).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    // Validation rejects bad values; Kubernetes treats what slips through as 0.
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        deployment_replicas(d),
    )
    .unwrap_or((0, 0))
}

/// Pods a rolling Deployment may run above `spec.replicas`; 0 for Recreate.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// Pods a rolling Deployment may lack below `spec.replicas`; 0 for Recreate or no replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// Kubernetes' `NewRSNewReplicas`: the size the new ReplicaSet may have now. Rolling: grow
/// toward `spec.replicas` while all ReplicaSets together stay within replicas + maxSurge.
/// Recreate: `spec.replicas` at once.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling(d) {
        return replicas;
    }
    let current = sum_spec(all.iter().copied());
    let max_total = replicas + max_surge(d);
    let new_size = spec_replicas(new_rs);
    if current >= max_total {
        return new_size;
    }
    let up = (max_total - current).min(replicas - new_size).max(0);
    new_size + up
}

/// One ReplicaSet resize in a plan: index into the slice the plan was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub index: usize,
    pub to: i32,
}

/// Kubernetes' `reconcileOldReplicaSets` for a rolling update: first shrink old ReplicaSets
/// by their unavailable pods (they add nothing and would block the rollout), then by
/// available ones as far as minAvailable (replicas − maxUnavailable) allows, oldest first.
/// `old` are the active old ReplicaSets.
pub fn old_scale_down(d: &Deployment, new_rs: &ReplicaSet, old: &[&ReplicaSet]) -> Vec<Resize> {
    let old_pods = sum_spec(old.iter().copied());
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods + spec_replicas(new_rs);
    let min_available = deployment_replicas(d) - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - available_replicas(new_rs);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by(|a, b| by_creation(old[*a], old[*b]));
    let mut sizes: Vec<i32> = old.iter().map(|r| spec_replicas(r)).collect();
    let mut plan = Vec::new();

    // Unhealthy replicas first.
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= max_scaled_down {
            break;
        }
        let available = available_replicas(old[i]);
        if sizes[i] == 0 || sizes[i] == available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(sizes[i] - available);
        if n < 0 {
            // More available than asked for: the status lags a scale-down. Kubernetes gives
            // up on this pass; so do we.
            return plan;
        }
        sizes[i] -= n;
        plan.push(Resize {
            index: i,
            to: sizes[i],
        });
        cleaned += n;
    }

    // Then available ones, keeping minAvailable.
    let available_all = sum_available(old.iter().copied()) + available_replicas(new_rs);
    if available_all <= min_available {
        return plan;
    }
    let to_scale_down = available_all - min_available;
    let mut scaled = 0;
    for &i in &order {
        if scaled >= to_scale_down {
            break;
        }
        if sizes[i] == 0 {
            continue;
        }
        let n = sizes[i].min(to_scale_down - scaled);
        sizes[i] -= n;
        plan.push(Resize {
            index: i,
            to: sizes[i],
        });
        scaled += n;
    }
    plan
}

/// Kubernetes' `FindActiveOrLatest`: the only active ReplicaSet, or (none active) the new one,
/// else the newest old one; `None` when several are active. `sets` holds the old ones and,
/// at `new_index`, the new one.
pub fn active_or_latest(sets: &[&ReplicaSet], new_index: Option<usize>) -> Option<usize> {
    if sets.is_empty() {
        return None;
    }
    let active: Vec<usize> = (0..sets.len()).filter(|i| is_active(sets[*i])).collect();
    match active.len() {
        0 => new_index.or_else(|| {
            (0..sets.len())
                .filter(|i| Some(*i) != new_index)
                .max_by(|a, b| by_creation(sets[*a], sets[*b]))
        }),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Kubernetes' `IsSaturated`: the new ReplicaSet has, wants and was sized for all replicas.
pub fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = deployment_replicas(d);
    annotations::desired_replicas(rs) == Some(replicas)
        && spec_replicas(rs) == replicas
        && available_replicas(rs) == replicas
}

/// Kubernetes' `getReplicaSetFraction`: this ReplicaSet's share of a resize, from the size
/// the Deployment had when it was last sized (`max-replicas`).
fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if replicas == 0 {
        return -spec_replicas(rs);
    }
    let max_now = replicas + max_surge(d);
    let before = match annotations::max_replicas(rs) {
        Some(n) if n != 0 => n,
        _ => d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
    };
    if before == 0 {
        return 0;
    }
    let size = f64::from(spec_replicas(rs)) * f64::from(max_now) / f64::from(before);
    // Kubernetes' RoundToInt32: floor(x + 0.5).
    #[allow(clippy::cast_possible_truncation)]
    let rounded = (size + 0.5).floor() as i32;
    rounded - spec_replicas(rs)
}

/// Kubernetes' `GetProportion`: the fraction, capped by what is left to distribute.
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        f.min(allowed)
    } else {
        f.max(allowed)
    }
}

/// How a Deployment's ReplicaSets are resized after its `spec.replicas` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePlan {
    /// In the order to apply them.
    pub resizes: Vec<Resize>,
    /// Proportional resizes also bring every set's replica annotations up to date, even at
    /// an unchanged size; the other cases only touch sets whose size changes.
    pub proportional: bool,
}

/// Kubernetes' `scale`: how a Deployment whose `spec.replicas` changed resizes its
/// ReplicaSets. With one active (or no active) ReplicaSet that one takes the whole size; with
/// a saturated new ReplicaSet the old ones go to zero; in the middle of a rolling update every
/// active ReplicaSet grows or shrinks in proportion to its size, the remainder going to the
/// largest.
pub fn proportional_scale(
    d: &Deployment,
    sets: &[&ReplicaSet],
    new_index: Option<usize>,
) -> ScalePlan {
    let replicas = deployment_replicas(d);
    let resizes = |resizes| ScalePlan {
        resizes,
        proportional: false,
    };
    if let Some(i) = active_or_latest(sets, new_index) {
        if spec_replicas(sets[i]) == replicas {
            return resizes(Vec::new());
        }
        return resizes(vec![Resize {
            index: i,
            to: replicas,
        }]);
    }
    if let Some(n) = new_index
        && is_saturated(d, sets[n])
    {
        return resizes(
            (0..sets.len())
                .filter(|i| Some(*i) != new_index && is_active(sets[*i]))
                .map(|index| Resize { index, to: 0 })
                .collect(),
        );
    }
    if !is_rolling(d) {
        return resizes(Vec::new());
    }
    let mut active: Vec<usize> = (0..sets.len()).filter(|i| is_active(sets[*i])).collect();
    let current = sum_spec(active.iter().map(|i| sets[*i]));
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    match to_add.cmp(&0) {
        std::cmp::Ordering::Greater => active.sort_by(|a, b| by_size_newer(sets[*a], sets[*b])),
        std::cmp::Ordering::Less => active.sort_by(|a, b| by_size_older(sets[*a], sets[*b])),
        std::cmp::Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for &i in &active {
        if to_add != 0 {
            let p = proportion(sets[i], d, to_add, added);
            sizes.push(spec_replicas(sets[i]) + p);
            added += p;
        } else {
            sizes.push(spec_replicas(sets[i]));
        }
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = (*first + to_add - added).max(0);
    }
    ScalePlan {
        resizes: active
            .into_iter()
            .zip(sizes)
            .map(|(index, to)| Resize { index, to })
            .collect(),
        proportional: true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::replicasets::tests::rs;
    use super::*;
    use serde_json::{Value, json};

    fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "new"}]}}},
            "status": {"replicas": replicas}
        }))
        .expect("deployment")
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&p("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&p("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&p("25%"), 4, true), Ok(1));
        assert_eq!(scaled_value(&p("0%"), 4, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(7), 4, true), Ok(7));
        assert!(scaled_value(&p("25"), 4, true).is_err());
        assert!(scaled_value(&p("x%"), 4, true).is_err());
    }

    #[test]
    fn fenceposts_never_both_zero() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(
            resolve_fenceposts(Some(&p("25%")), Some(&p("25%")), 10),
            Ok((3, 2))
        );
        assert_eq!(
            resolve_fenceposts(Some(&p("25%")), Some(&p("25%")), 1),
            Ok((1, 0))
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&p("10%")), 5),
            Ok((0, 1))
        );
        let d = deployment(3, json!(0), json!(5));
        assert_eq!(max_unavailable(&d), 3, "capped at replicas");
        assert_eq!(max_surge(&d), 0);
    }

    #[test]
    fn recreate_has_no_surge_or_unavailability() {
        let mut d = deployment(3, json!(1), json!(1));
        d.spec.as_mut().expect("spec").strategy =
            Some(serde_json::from_value(json!({"type": "Recreate"})).expect("s"));
        assert_eq!(max_surge(&d), 0);
        assert_eq!(max_unavailable(&d), 0);
        let new = rs("new", 0, 0, 2, "2");
        assert_eq!(new_rs_new_replicas(&d, &[&new], &new), 3);
    }

    #[test]
    fn new_replicaset_grows_within_surge() {
        let d = deployment(10, json!("25%"), json!("25%"));
        let old = rs("old", 10, 10, 1, "1");
        let new = rs("new", 0, 0, 2, "2");
        assert_eq!(
            new_rs_new_replicas(&d, &[&old, &new], &new),
            3,
            "10 + 3 surge"
        );
        let old = rs("old", 8, 8, 1, "1");
        let new = rs("new", 3, 0, 2, "2");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 5);
        let new = rs("new", 9, 0, 2, "2");
        let old = rs("old", 1, 1, 1, "1");
        assert_eq!(
            new_rs_new_replicas(&d, &[&old, &new], &new),
            10,
            "never above replicas"
        );
    }

    #[test]
    fn old_replicasets_shrink_within_max_unavailable() {
        let d = deployment(10, json!("25%"), json!("25%"));
        // 10 old available, 3 new not yet available: min available 8 → scale old down by 2.
        let old = rs("old", 10, 10, 1, "1");
        let new = rs("new", 3, 0, 2, "2");
        assert_eq!(
            old_scale_down(&d, &new, &[&old]),
            vec![Resize { index: 0, to: 8 }]
        );
        // Nothing may go while availability is at the floor.
        let old = rs("old", 8, 8, 1, "1");
        let new = rs("new", 5, 0, 2, "2");
        assert!(old_scale_down(&d, &new, &[&old]).is_empty());
    }

    #[test]
    fn unhealthy_old_replicas_go_first() {
        let d = deployment(4, json!(1), json!(0));
        // The old set has 2 unavailable pods. 5 pods exist, 4 must stay: one of the
        // unavailable ones goes, without touching availability (3 available, below the floor
        // of 4, so no available pod goes).
        let old = rs("old", 4, 2, 1, "1");
        let new = rs("new", 1, 1, 2, "2");
        assert_eq!(
            old_scale_down(&d, &new, &[&old]),
            vec![Resize { index: 0, to: 3 }]
        );
        // With more room, every unavailable one goes first, then available ones.
        let d = deployment(4, json!(1), json!(1));
        let plan = old_scale_down(&d, &new, &[&old]);
        assert_eq!(plan, vec![Resize { index: 0, to: 2 }]);
    }

    #[test]
    fn oldest_old_replicaset_shrinks_first() {
        let d = deployment(4, json!(0), json!(2));
        let older = rs("a", 2, 2, 1, "1");
        let newer = rs("b", 2, 2, 2, "2");
        let new = rs("c", 0, 0, 3, "3");
        assert_eq!(
            old_scale_down(&d, &new, &[&newer, &older]),
            vec![Resize { index: 1, to: 0 }]
        );
    }

    #[test]
    fn a_single_active_replicaset_takes_the_whole_scale() {
        let d = deployment(5, json!(1), json!(1));
        let new = rs("new", 3, 3, 2, "2");
        let old = rs("old", 0, 0, 1, "1");
        assert_eq!(
            proportional_scale(&d, &[&old, &new], Some(1)).resizes,
            vec![Resize { index: 1, to: 5 }]
        );
        let d3 = deployment(3, json!(1), json!(1));
        assert!(
            proportional_scale(&d3, &[&old, &new], Some(1))
                .resizes
                .is_empty()
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // 10 replicas, surge 3: old 8 and new 5 (13 = max). Scale to 20: max 25 (surge 5).
        let mut d = deployment(20, json!("25%"), json!("25%"));
        d.status.as_mut().expect("status").replicas = Some(13);
        let mut old = rs("old", 8, 8, 1, "1");
        let mut new = rs("new", 5, 0, 2, "2");
        for r in [&mut old, &mut new] {
            annotations::set_replicas_annotations(r, 10, 13);
        }
        let plan = proportional_scale(&d, &[&old, &new], Some(1));
        assert!(plan.proportional);
        let plan = plan.resizes;
        let total: i32 = plan.iter().map(|r| r.to).sum();
        assert_eq!(total, 25);
        assert!(plan.contains(&Resize { index: 0, to: 15 }), "{plan:?}");
        assert!(plan.contains(&Resize { index: 1, to: 10 }), "{plan:?}");
    }

    #[test]
    fn saturated_new_replicaset_zeroes_the_old_ones() {
        let d = deployment(3, json!(1), json!(1));
        let mut new = rs("new", 3, 3, 2, "2");
        annotations::set_replicas_annotations(&mut new, 3, 4);
        let old = rs("old", 1, 1, 1, "1");
        assert_eq!(
            proportional_scale(&d, &[&old, &new], Some(1)).resizes,
            vec![Resize { index: 0, to: 0 }]
        );
    }
}
