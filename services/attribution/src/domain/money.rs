//! Money, exactly. A CRM gives a deal's amount as a decimal string ("12500.00") in a currency;
//! we keep it as an integer number of units at a decimal scale (never a float), add amounts only
//! within one currency, and split an amount into parts that add up to it exactly.

use std::cmp::Ordering;
use std::fmt;

/// A currency as the CRM gives it: the ISO 4217 code, trimmed and upper-cased. Empty when the
/// CRM gave none (a Salesforce org without multi-currency, a HubSpot deal without a currency):
/// such amounts are in the CRM's company currency, which we do not know, so they stay apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Currency(String);

/// Longest currency code kept (ISO codes have 3 letters; anything longer is cut, never merged).
const MAX_CURRENCY_LEN: usize = 16;

impl Currency {
    pub fn new(code: &str) -> Self {
        let mut c = code.trim().to_ascii_uppercase();
        if c.len() > MAX_CURRENCY_LEN {
            let mut cut = MAX_CURRENCY_LEN;
            while !c.is_char_boundary(cut) {
                cut -= 1;
            }
            c.truncate(cut);
        }
        Self(c)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits of the currency's minor unit (ISO 4217); 2 for codes we do not know.
    pub fn minor_digits(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Most digits after the decimal point an amount may have.
pub const MAX_SCALE: u32 = 6;
/// Most digits before the decimal point an amount may have.
pub const MAX_INTEGER_DIGITS: u32 = 20;

/// Why a CRM amount was not accepted (the deal then counts as having no amount).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not a decimal number")]
    NotADecimal(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} has more than {MAX_INTEGER_DIGITS} digits before the decimal point")]
    TooLarge(String),
    #[error("{0:?} has more than {MAX_SCALE} significant digits after the decimal point")]
    TooPrecise(String),
}

/// A non-negative decimal amount: `units / 10^scale`.
///
/// Equality is structural (`1.0` at scale 1 is not `1.00` at scale 2); amounts parsed for one
/// currency always have at least its minor-unit digits, and arithmetic aligns scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amount {
    units: u128,
    scale: u32,
}

fn pow10(n: u32) -> Option<u128> {
    10u128.checked_pow(n)
}

impl Amount {
    pub fn zero(scale: u32) -> Self {
        Self { units: 0, scale }
    }

    /// `units / 10^scale`; `None` past the limits.
    pub fn from_units(units: u128, scale: u32) -> Option<Self> {
        let limit = pow10(MAX_INTEGER_DIGITS + scale)?;
        (scale <= MAX_SCALE && units < limit).then_some(Self { units, scale })
    }

    pub fn units(&self) -> u128 {
        self.units
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn is_zero(&self) -> bool {
        self.units == 0
    }

    /// Parses a CRM amount for `currency`: `Ok(None)` when empty. Accepts `12500`, `12500.5`,
    /// `.5`, `1.25E4` (Salesforce numbers); refuses negatives, separators and garbage. The
    /// result has at least the currency's minor-unit digits, and no trailing zeros beyond them
    /// (`"12500"` USD is `12500.00`, `"12500.000"` USD is `12500.00`, `"12500.005"` stays).
    pub fn parse(s: &str, currency: &Currency) -> Result<Option<Self>, AmountError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let not_decimal = || AmountError::NotADecimal(s.to_string());
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let e: i32 = s[i + 1..].parse().map_err(|_| not_decimal())?;
                (&s[..i], e)
            }
            None => (s, 0),
        };
        if mantissa.starts_with('-') {
            return Err(AmountError::Negative(s.to_string()));
        }
        let mantissa = mantissa.strip_prefix('+').unwrap_or(mantissa);
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(not_decimal());
        }
        if !(-40..=40).contains(&exponent) {
            return Err(AmountError::TooLarge(s.to_string()));
        }
        let digits: String = int.chars().chain(frac.chars()).collect();
        let digits = digits.trim_start_matches('0');
        if digits.len() > 40 {
            return Err(AmountError::TooLarge(s.to_string()));
        }
        let mut units: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| not_decimal())?
        };
        let too_large = || AmountError::TooLarge(s.to_string());
        let mut scale = frac.len() as i64 - i64::from(exponent);
        if scale < 0 {
            let up = u32::try_from(-scale).map_err(|_| too_large())?;
            units = pow10(up)
                .and_then(|p| units.checked_mul(p))
                .ok_or_else(too_large)?;
            scale = 0;
        }
        let minor = i64::from(currency.minor_digits());
        while scale > minor && units.is_multiple_of(10) {
            units /= 10;
            scale -= 1;
        }
        if scale > i64::from(MAX_SCALE) {
            return Err(AmountError::TooPrecise(s.to_string()));
        }
        while scale < minor {
            units = units.checked_mul(10).ok_or_else(too_large)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).map_err(|_| too_large())?;
        Self::from_units(units, scale)
            .map(Some)
            .ok_or_else(too_large)
    }

    /// The same amount at a larger `scale`; `None` when `scale` is smaller or past the limits.
    pub fn rescale(self, scale: u32) -> Option<Self> {
        if scale < self.scale {
            return None;
        }
        let units = self.units.checked_mul(pow10(scale - self.scale)?)?;
        Some(Self { units, scale })
    }

    /// Exact sum at the larger of the two scales; `None` on overflow (far beyond any CRM total).
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let a = self.rescale(scale)?;
        let b = other.rescale(scale)?;
        Some(Self {
            units: a.units.checked_add(b.units)?,
            scale,
        })
    }

    /// Compares values (not representations).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        let scale = self.scale.max(other.scale);
        match (self.rescale(scale), other.rescale(scale)) {
            (Some(a), Some(b)) => a.units.cmp(&b.units),
            // Unreachable within the limits; fall back to a float comparison of the magnitudes.
            _ => (self.units as f64 / 10f64.powi(self.scale as i32))
                .total_cmp(&(other.units as f64 / 10f64.powi(other.scale as i32))),
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.units.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{int}.{frac}")
    }
}

/// Splits `total` into parts proportional to `weights` that add up to `total` exactly (largest
/// remainder method): each part is `total * w / sum(w)` rounded down, and the units left over go
/// one each to the parts with the largest remainders, ties to the earlier part. All-zero weights
/// count as equal weights. Empty weights give no parts.
pub fn allocate(total: u128, weights: &[u128]) -> Vec<u128> {
    if weights.is_empty() {
        return Vec::new();
    }
    let equal;
    let weights = if weights.iter().all(|w| *w == 0) {
        equal = vec![1u128; weights.len()];
        &equal[..]
    } else {
        weights
    };
    let sum: u128 = weights.iter().fold(0u128, |a, w| a.saturating_add(*w));
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        // Within the limits (total < 10^26, weights <= 2^40) the product fits in 128 bits.
        let product = total.saturating_mul(*w);
        parts.push(product / sum);
        remainders.push((product % sum, i));
    }
    let given: u128 = parts.iter().sum();
    let left = total.saturating_sub(given);
    // Largest remainder first; on equal remainders, the earlier part first.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders
        .into_iter()
        .take(usize::try_from(left).unwrap_or(usize::MAX))
    {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::new("usd")
    }

    fn amount(s: &str, c: &str) -> String {
        Amount::parse(s, &Currency::new(c))
            .unwrap()
            .unwrap()
            .to_string()
    }

    #[test]
    fn given_crm_decimal_strings_when_parsed_then_they_keep_the_currencys_minor_units() {
        assert_eq!(amount("12500", "USD"), "12500.00");
        assert_eq!(amount("12500.5", "usd"), "12500.50");
        assert_eq!(amount("12500.000", "USD"), "12500.00");
        assert_eq!(amount("12500.005", "USD"), "12500.005");
        assert_eq!(amount(" .5 ", "EUR"), "0.50");
        assert_eq!(amount("1.25E4", "USD"), "12500.00");
        assert_eq!(amount("125e-2", "USD"), "1.25");
        assert_eq!(amount("1000000", "JPY"), "1000000");
        assert_eq!(amount("1000000.00", "JPY"), "1000000");
        assert_eq!(amount("1.5", "JPY"), "1.5");
        assert_eq!(amount("2.5", "KWD"), "2.500");
        assert_eq!(amount("0", "USD"), "0.00");
        assert_eq!(amount("7", ""), "7.00");
        assert_eq!(Amount::parse("", &usd()).unwrap(), None);
        assert_eq!(Amount::parse("   ", &usd()).unwrap(), None);
    }

    #[test]
    fn given_bad_amounts_when_parsed_then_each_says_what_is_wrong() {
        for (s, want) in [
            ("abc", "not a decimal"),
            ("12,500.00", "not a decimal"),
            ("1.2.3", "not a decimal"),
            (".", "not a decimal"),
            ("1e", "not a decimal"),
            ("NaN", "not a decimal"),
            ("-5.00", "negative"),
            ("123456789012345678901", "digits before"),
            ("1e400", "digits before"),
            ("0.0000001", "after the decimal point"),
        ] {
            let e = Amount::parse(s, &usd()).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn given_amounts_at_different_scales_when_added_then_the_sum_is_exact() {
        let c = usd();
        let a = Amount::parse("0.10", &c).unwrap().unwrap();
        let b = Amount::parse("0.205", &c).unwrap().unwrap();
        assert_eq!(a.checked_add(b).unwrap().to_string(), "0.305");
        // 0.1 + 0.2 in floats is 0.30000000000000004; here it is 0.30.
        let p = Amount::parse("0.2", &c).unwrap().unwrap();
        assert_eq!(a.checked_add(p).unwrap().to_string(), "0.30");
        assert_eq!(a.cmp_value(&p), Ordering::Less);
        assert_eq!(
            Amount::from_units(100, 2)
                .unwrap()
                .cmp_value(&Amount::from_units(1, 0).unwrap()),
            Ordering::Equal
        );
    }

    #[test]
    fn given_weights_when_allocating_then_parts_add_up_exactly_and_leftovers_go_to_the_largest_remainders()
     {
        // 100 in thirds: 33.33.. each, one unit left, all remainders equal: the first gets it.
        assert_eq!(allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        // 1000 at 1:4:8 (sum 13): 76.9, 307.7, 615.4 -> 76, 307, 615 (998), two left, to the
        // largest remainders .9 then .7.
        assert_eq!(allocate(1000, &[1, 4, 8]), vec![77, 308, 615]);
        assert_eq!(allocate(5, &[0, 0]), vec![3, 2]);
        assert_eq!(allocate(0, &[1, 2]), vec![0, 0]);
        assert_eq!(allocate(7, &[]), Vec::<u128>::new());
        for total in [0u128, 1, 2, 99, 1_000_001, 10u128.pow(26) - 1] {
            for w in [
                vec![1u128],
                vec![3, 7],
                vec![1 << 40, 1, 1 << 20],
                vec![5, 5, 5, 5, 5, 5, 5],
            ] {
                assert_eq!(allocate(total, &w).iter().sum::<u128>(), total);
            }
        }
    }
}
