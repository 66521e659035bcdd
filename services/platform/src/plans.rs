//! Plans and their lookback windows, from configuration:
//! `RP_PLANS=starter:30,90;growth:30,90,180;enterprise:30,90,180,365`.

use std::collections::BTreeMap;

pub const DEFAULT_PLANS: &str = "starter:30,90;growth:30,90,180;enterprise:30,90,180,365";

/// Every plan's lookback windows in days (ascending). The first plan listed is the fallback for
/// a workspace whose plan is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    plans: BTreeMap<String, Vec<u32>>,
    fallback: String,
}

impl Plans {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut plans = BTreeMap::new();
        let mut fallback = None;
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, windows) = part.split_once(':').ok_or_else(|| {
                format!("{part:?} is not <plan>:<days>,<days>,... (e.g. growth:30,90,180)")
            })?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(format!("{part:?} has no plan name"));
            }
            let mut days = Vec::new();
            for w in windows.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                let d: u32 = w.parse().map_err(|_| {
                    format!("plan {name}: window {w:?} is not a whole number of days")
                })?;
                if !(1..=3_650).contains(&d) {
                    return Err(format!("plan {name}: window {d} must be 1 to 3650 days"));
                }
                days.push(d);
            }
            if days.is_empty() {
                return Err(format!("plan {name} has no lookback windows"));
            }
            days.sort_unstable();
            days.dedup();
            if plans.insert(name.clone(), days).is_some() {
                return Err(format!("plan {name} is listed twice"));
            }
            fallback.get_or_insert(name);
        }
        let fallback = fallback.ok_or_else(|| "no plans given".to_string())?;
        Ok(Self { plans, fallback })
    }

    /// The windows of `plan` (case-insensitive); the fallback plan's when unknown or empty.
    pub fn windows(&self, plan: Option<&str>) -> &[u32] {
        plan.map(str::to_ascii_lowercase)
            .and_then(|p| self.plans.get(&p))
            .or_else(|| self.plans.get(&self.fallback))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The longest window of `plan`: how far back engagement is pulled.
    pub fn longest_window(&self, plan: Option<&str>) -> u32 {
        self.windows(plan).iter().copied().max().unwrap_or(30)
    }

    pub fn knows(&self, plan: &str) -> bool {
        self.plans.contains_key(&plan.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plans_parse_and_give_their_longest_window() {
        let p = Plans::parse(DEFAULT_PLANS).unwrap();
        assert_eq!(p.windows(Some("growth")), &[30, 90, 180]);
        assert_eq!(p.longest_window(Some("Enterprise")), 365);
        assert_eq!(p.longest_window(Some("starter")), 90);
        // Unknown or missing plans fall back to the first plan listed.
        assert_eq!(p.longest_window(Some("platinum")), 90);
        assert_eq!(p.longest_window(None), 90);
        assert!(p.knows("GROWTH"));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(Plans::parse("").unwrap_err().contains("no plans"));
        assert!(
            Plans::parse("growth")
                .unwrap_err()
                .contains("<plan>:<days>")
        );
        assert!(
            Plans::parse("growth:30,x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(Plans::parse("growth:0").unwrap_err().contains("1 to 3650"));
        assert!(Plans::parse("a:1;a:2").unwrap_err().contains("twice"));
        assert!(Plans::parse("a:").unwrap_err().contains("no lookback"));
    }
}
