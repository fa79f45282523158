//! `IntOrString` budgets (`maxSurge`, `maxUnavailable`) as Kubernetes scales them.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `intstr.GetScaledValueFromIntOrPercent`: an int as it is; `N%` of `total`, rounded up or
/// down. `None` for a string that is not a percentage.
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            let num = pct * i64::from(total);
            let v = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            i32::try_from(v).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_scale_with_rounding() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(scaled(&pct, 10, true), Some(3));
        assert_eq!(scaled(&pct, 10, false), Some(2));
        assert_eq!(scaled(&pct, 0, true), Some(0));
        assert_eq!(scaled(&IntOrString::Int(2), 10, true), Some(2));
        assert_eq!(scaled(&IntOrString::String("2".into()), 10, true), None);
    }
}
