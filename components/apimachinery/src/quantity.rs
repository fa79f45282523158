//! Resource quantities (`resource.Quantity`): parsing, exact arithmetic, comparison and
//! Kubernetes' canonical form (`1500m`, `128Mi`, `2`), which is what error messages and
//! objects written by the system show.
//!
//! A quantity is kept as a signed count of nano-units (10⁻⁹), enough for every value the
//! apiserver accepts (`Ei` and `n` alike); parsing rounds finer precision up, as
//! Kubernetes does, so that asking for a tiny amount never becomes zero.

use std::cmp::Ordering;
use std::fmt;

/// Nano-units in one unit.
const NANO: i128 = 1_000_000_000;

/// How a quantity is written, from the suffix it was parsed with; kept through
/// arithmetic so that sums print like their inputs (`128Mi + 128Mi = 256Mi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `m`, `k`, `M`, … or no suffix.
    #[default]
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, …
    BinarySI,
    /// `e3`, `E6`, …
    DecimalExponent,
}

/// A string that is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct ParseError;

/// One `resource.Quantity`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Parses a quantity into nano-units and the format its suffix implies.
fn parse_nanos(s: &str) -> Option<(i128, Format)> {
    let s = s.trim();
    let bytes = s.as_bytes();
    let (negative, start) = match bytes.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut i = start;
    let mut mantissa: i128 = 0;
    let mut digits = 0u32;
    let mut frac_digits: i32 = 0;
    let mut seen_point = false;
    let mut ignored_int_digits: i32 = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                // Beyond 30 significant digits the rest cannot matter at nano precision.
                if digits < 30 {
                    mantissa = mantissa * 10 + i128::from(bytes[i] - b'0');
                    if mantissa != 0 {
                        digits += 1;
                    }
                    if seen_point {
                        frac_digits += 1;
                    }
                } else if !seen_point {
                    ignored_int_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    let number_len = i - start;
    if number_len == 0 || (seen_point && number_len == 1) {
        return None;
    }
    let (exp10, exp2, format): (i32, u32, Format) = match &s[i..] {
        "" => (0, 0, Format::DecimalSI),
        "n" => (-9, 0, Format::DecimalSI),
        "u" => (-6, 0, Format::DecimalSI),
        "m" => (-3, 0, Format::DecimalSI),
        "k" => (3, 0, Format::DecimalSI),
        "M" => (6, 0, Format::DecimalSI),
        "G" => (9, 0, Format::DecimalSI),
        "T" => (12, 0, Format::DecimalSI),
        "P" => (15, 0, Format::DecimalSI),
        "E" => (18, 0, Format::DecimalSI),
        "Ki" => (0, 10, Format::BinarySI),
        "Mi" => (0, 20, Format::BinarySI),
        "Gi" => (0, 30, Format::BinarySI),
        "Ti" => (0, 40, Format::BinarySI),
        "Pi" => (0, 50, Format::BinarySI),
        "Ei" => (0, 60, Format::BinarySI),
        other => {
            let rest = other.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (rest.parse::<i32>().ok()?, 0, Format::DecimalExponent)
        }
    };
    let scale = exp10 + 9 - frac_digits + ignored_int_digits;
    let mut value = mantissa.checked_mul(1i128 << exp2)?;
    if scale >= 0 {
        for _ in 0..scale.min(60) {
            value = value.checked_mul(10)?;
        }
    } else {
        let mut divisor: i128 = 1;
        for _ in 0..(-scale).min(38) {
            divisor = divisor.checked_mul(10)?;
        }
        // Round up, as resource.Quantity does when it scales down.
        value = (value + divisor - 1) / divisor;
    }
    // A binary quantity below one is written in decimal (Kubernetes: "avoids rounding").
    let format = if format == Format::BinarySI && value < NANO {
        Format::DecimalSI
    } else {
        format
    };
    Some((if negative { -value } else { value }, format))
}

fn ceil_div(v: i128, d: i128) -> i64 {
    let q = if v >= 0 { (v + d - 1) / d } else { v / d };
    i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
}

impl Quantity {
    /// Parses `s` as the apiserver does.
    pub fn parse(s: &str) -> Result<Quantity, ParseError> {
        parse_nanos(s)
            .map(|(nanos, format)| Quantity { nanos, format })
            .ok_or(ParseError)
    }

    /// A whole number of units (`resource.NewQuantity(v, DecimalSI)`).
    pub fn from_value(v: i64) -> Quantity {
        Quantity {
            nanos: i128::from(v) * NANO,
            format: Format::DecimalSI,
        }
    }

    /// A number of milli-units (`resource.NewMilliQuantity(v, DecimalSI)`).
    pub fn from_milli(v: i64) -> Quantity {
        Quantity {
            nanos: i128::from(v) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        match self.nanos.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// `Quantity.Value()`: whole units, rounded up.
    pub fn value(&self) -> i64 {
        ceil_div(self.nanos, NANO)
    }

    /// `Quantity.MilliValue()`: milli-units, rounded up.
    pub fn milli_value(&self) -> i64 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// `Quantity.Add`: a zero receiver takes the other's format.
    pub fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos = self.nanos.saturating_add(other.nanos);
    }

    /// `Quantity.Sub`: a zero receiver takes the other's format.
    pub fn sub(&mut self, other: &Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos = self.nanos.saturating_sub(other.nanos);
    }

    /// The canonical form, as `Quantity.String()` prints it.
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySI
            && self.nanos.abs() >= 1024 * NANO
            && self.nanos % NANO == 0
        {
            let mut v = self.nanos / NANO;
            let mut power = 0;
            while power < 6 && v % 1024 == 0 {
                v /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return format!("{v}{suffix}");
        }
        // Decimal: move the factors of ten into the exponent, then make the exponent a
        // multiple of three (lower).
        let mut m = self.nanos;
        let mut exp: i32 = -9;
        while m % 10 == 0 {
            m /= 10;
            exp += 1;
        }
        match exp.rem_euclid(3) {
            1 => {
                m *= 10;
                exp -= 1;
            }
            2 => {
                m *= 100;
                exp -= 2;
            }
            _ => {}
        }
        let suffix = match (self.format, exp) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{m}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl std::str::FromStr for Quantity {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// `Quantity.MilliValue()` of a string; unparsable quantities count as zero (the
/// apiserver validates them before anyone sums them).
pub fn milli_value(q: &str) -> i64 {
    Quantity::parse(q).map_or(0, |q| q.milli_value())
}

/// `Quantity.Value()` of a string; unparsable quantities count as zero.
pub fn value(q: &str) -> i64 {
    Quantity::parse(q).map_or(0, |q| q.value())
}

/// Whether the apiserver accepts `q` as a quantity.
pub fn is_valid(q: &str) -> bool {
    Quantity::parse(q).is_ok()
}

/// The canonical form of `q`, or `q` itself when it is not a quantity.
pub fn canonical(q: &str) -> String {
    Quantity::parse(q).map_or_else(|_| q.to_string(), |q| q.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    #[test]
    fn quantities_parse_like_resource_quantity() {
        assert_eq!(milli_value("1"), 1000);
        assert_eq!(milli_value("250m"), 250);
        assert_eq!(milli_value("0.5"), 500);
        assert_eq!(milli_value(".5"), 500);
        assert_eq!(milli_value("1.5k"), 1_500_000);
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1Gi"), 1 << 30);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("2E"), 2_000_000_000_000_000_000);
        assert_eq!(value("110"), 110);
        // Value() and MilliValue() round up.
        assert_eq!(milli_value("1n"), 1);
        assert_eq!(value("100m"), 1);
        assert_eq!(milli_value("0.0001"), 1);
        assert_eq!(value("0"), 0);
        assert_eq!(value("-1500m"), -1);
        for bad in ["", "abc", "1Xi", "1.2.3", "-", ".", "1K", "1e", "1ex"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn canonical_form_is_kubernetes_string() {
        for (input, want) in [
            ("1", "1"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("0.5", "500m"),
            ("0.05", "50m"),
            ("10", "10"),
            ("100", "100"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("1k", "1k"),
            ("128Mi", "128Mi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("1024", "1024"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("100Gi", "100Gi"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("0", "0"),
            ("0Mi", "0"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
            ("-500m", "-500m"),
            ("1G", "1G"),
            ("2048k", "2048k"),
        ] {
            assert_eq!(q(input).canonical(), want, "{input}");
        }
    }

    #[test]
    fn arithmetic_keeps_formats_like_quantity() {
        let mut a = q("128Mi");
        a.add(&q("128Mi"));
        assert_eq!(a.to_string(), "256Mi");
        let mut zero = q("0");
        zero.add(&q("1Gi"));
        assert_eq!(
            zero.to_string(),
            "1Gi",
            "a zero receiver takes the other's format"
        );
        let mut cpu = q("500m");
        cpu.add(&q("500m"));
        assert_eq!(cpu.to_string(), "1");
        cpu.sub(&q("250m"));
        assert_eq!(cpu.to_string(), "750m");
        let mut pods = Quantity::from_value(2);
        pods.add(&Quantity::from_value(1));
        assert_eq!(pods.to_string(), "3");
        assert!(q("1") > q("999m"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Gi").sign(), 1);
        assert_eq!(q("-1").sign(), -1);
        assert_eq!(Quantity::from_milli(1500).to_string(), "1500m");
    }
}
