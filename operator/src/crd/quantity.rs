//! Exact parsing of Kubernetes quantities (`1Gi`, `500m`, `1e3`), so validation can compare
//! a request with its limit without floating-point surprises.

/// Units of 10^-9: fine enough for every quantity Kubernetes keeps (it rounds to 10^-3 and
/// caps magnitudes at 2^63), small enough that 2^63 * 10^9 fits an `i128`.
const NANO: i128 = 1_000_000_000;

/// Parse a quantity into nano-units. `None` when it is not a Kubernetes quantity.
///
/// Grammar (from `k8s.io/apimachinery/pkg/api/resource`): a signed decimal number followed
/// by a binary suffix (`Ki`..`Ei`), a decimal suffix (`m`, ``, `k`..`E`) or an exponent
/// (`e3`, `E-2`). Digits beyond nano precision round up, as Kubernetes rounds up.
pub(crate) fn parse_quantity(s: &str) -> Option<i128> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return None;
    }

    // value = digits * 10^(exp10 - frac_len) * 2^exp2
    let (exp10, exp2) = match suffix {
        "" => (0, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        exp => {
            let digits = exp.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (digits.parse::<i32>().ok()?, 0)
        }
    };

    let mut digits: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        digits = digits.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if digits > i128::from(i64::MAX) * NANO {
            return None;
        }
    }
    let frac_len = i32::try_from(frac_part.len()).ok()?;
    let mut value = digits.checked_mul(1i128 << exp2)?;
    // Shift to nano-units: multiply by 10^(exp10 - frac_len + 9), rounding up when dividing.
    let shift = exp10 - frac_len + 9;
    if shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    } else {
        let div = 10i128
            .checked_pow(u32::try_from(-shift).ok()?)
            .unwrap_or(i128::MAX);
        value = value / div + i128::from(value % div != 0);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(parse_quantity("1Gi"), Some((1 << 30) * NANO));
        assert_eq!(parse_quantity("1024Mi"), parse_quantity("1Gi"));
        assert_eq!(parse_quantity("100m"), parse_quantity("0.1"));
        assert_eq!(parse_quantity("1k"), parse_quantity("1e3"));
        assert_eq!(parse_quantity("1.5Gi"), parse_quantity("1536Mi"));
        assert_eq!(parse_quantity("-2"), Some(-2 * NANO));
        assert_eq!(parse_quantity(".5"), Some(NANO / 2));
        assert_eq!(parse_quantity("0"), Some(0));
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "Gi", "1GB", "1..2", "1 Gi", "abc", "1e", "1e+", "--1", ".",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tiny_values_round_up() {
        assert_eq!(parse_quantity("1e-12"), Some(1));
    }
}
