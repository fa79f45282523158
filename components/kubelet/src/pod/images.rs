//! Image references and pull policy, as the kubelet's image manager decides: the default
//! `:latest` tag, `InvalidImageName`, and whether to pull (`Always`, `IfNotPresent`,
//! `Never`).

/// Whether `s` is a valid image reference (`[host[:port]/]path[:tag][@digest]`, lowercase
/// path components).
fn valid_reference(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 + 128 + 80 {
        return false;
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((algo, hex)) = d.split_once(':') else {
            return false;
        };
        if algo.is_empty()
            || !algo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c))
            || hex.len() < 32
            || !hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            return false;
        }
    }
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(t) = tag {
        let mut chars = t.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok
            || t.len() > 128
            || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with a '.' or ':' (or "localhost") is a registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
            || port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return false;
        }
    }
    !parts.is_empty()
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// The reference with Kubernetes' default tag, or the `InvalidImageName` message.
pub fn with_default_tag(image: &str) -> Result<String, String> {
    if !valid_reference(image) {
        return Err(format!(
            "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"
        ));
    }
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let tagged = name[last_slash..].contains(':');
    if tagged || image.contains('@') {
        Ok(image.to_string())
    } else {
        Ok(format!("{image}:latest"))
    }
}

/// What to do about an image before creating a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// It is present and the policy does not force a pull.
    UsePresent,
    Pull,
    /// Absent with policy Never: `ErrImageNeverPull`.
    NeverPull,
}

/// The pull policy's effective value (the apiserver defaults it; a missing one means
/// `Always` for `:latest` or untagged, else `IfNotPresent`).
pub fn effective_policy(policy: Option<&str>, image: &str) -> String {
    match policy {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            let tagged = with_default_tag(image).unwrap_or_default();
            if tagged.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        }
    }
}

pub fn decide(policy: &str, present: bool) -> PullDecision {
    match (policy, present) {
        ("Always", _) => PullDecision::Pull,
        ("Never", false) => PullDecision::NeverPull,
        (_, true) => PullDecision::UsePresent,
        (_, false) => PullDecision::Pull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tag_and_invalid_names() {
        assert_eq!(with_default_tag("busybox").as_deref(), Ok("busybox:latest"));
        assert_eq!(
            with_default_tag("busybox:1.36").as_deref(),
            Ok("busybox:1.36")
        );
        assert_eq!(
            with_default_tag("127.0.0.1:5000/kadm/busybox").as_deref(),
            Ok("127.0.0.1:5000/kadm/busybox:latest")
        );
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(with_default_tag(&digest).as_deref(), Ok(digest.as_str()));
        assert_eq!(
            with_default_tag("BusyBox").expect_err("uppercase"),
            "Failed to apply default image tag \"BusyBox\": couldn't parse image name \"BusyBox\": invalid reference format"
        );
        assert!(with_default_tag("busybox:").is_err());
        assert!(with_default_tag("").is_err());
        assert!(with_default_tag("a//b").is_err());
    }

    #[test]
    fn pull_policies() {
        assert_eq!(effective_policy(None, "busybox"), "Always");
        assert_eq!(effective_policy(None, "busybox:1"), "IfNotPresent");
        assert_eq!(effective_policy(Some("Never"), "busybox"), "Never");
        assert_eq!(decide("Always", true), PullDecision::Pull);
        assert_eq!(decide("IfNotPresent", true), PullDecision::UsePresent);
        assert_eq!(decide("IfNotPresent", false), PullDecision::Pull);
        assert_eq!(decide("Never", false), PullDecision::NeverPull);
        assert_eq!(decide("Never", true), PullDecision::UsePresent);
    }
}
