//! LinkedIn's Marketing API versions: monthly `YYYYMM` versions, each supported for 12 months.
//! A version is active from the 1st of its month (its release) until the 1st of the same month a
//! year later (its sunset). The table is explicit, as LinkedIn publishes it, and is read against
//! the sandbox clock, so `POST /admin/clock/advance` sunsets versions like time does.

use chrono::NaiveDate;

/// One row of the table: the version and the dates it is active between (`[released, sunset)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub version: u32,
    pub released: (i32, u32, u32),
    pub sunset: (i32, u32, u32),
}

const fn v(version: u32, released: (i32, u32, u32), sunset: (i32, u32, u32)) -> ApiVersion {
    ApiVersion {
        version,
        released,
        sunset,
    }
}

/// Every version the sandbox knows, oldest first. A version not in it does not exist.
pub const VERSIONS: &[ApiVersion] = &[
    v(202401, (2024, 1, 1), (2025, 1, 1)),
    v(202402, (2024, 2, 1), (2025, 2, 1)),
    v(202403, (2024, 3, 1), (2025, 3, 1)),
    v(202404, (2024, 4, 1), (2025, 4, 1)),
    v(202405, (2024, 5, 1), (2025, 5, 1)),
    v(202406, (2024, 6, 1), (2025, 6, 1)),
    v(202407, (2024, 7, 1), (2025, 7, 1)),
    v(202408, (2024, 8, 1), (2025, 8, 1)),
    v(202409, (2024, 9, 1), (2025, 9, 1)),
    v(202410, (2024, 10, 1), (2025, 10, 1)),
    v(202411, (2024, 11, 1), (2025, 11, 1)),
    v(202412, (2024, 12, 1), (2025, 12, 1)),
    v(202501, (2025, 1, 1), (2026, 1, 1)),
    v(202502, (2025, 2, 1), (2026, 2, 1)),
    v(202503, (2025, 3, 1), (2026, 3, 1)),
    v(202504, (2025, 4, 1), (2026, 4, 1)),
    v(202505, (2025, 5, 1), (2026, 5, 1)),
    v(202506, (2025, 6, 1), (2026, 6, 1)),
    v(202507, (2025, 7, 1), (2026, 7, 1)),
    v(202508, (2025, 8, 1), (2026, 8, 1)),
    v(202509, (2025, 9, 1), (2026, 9, 1)),
    v(202510, (2025, 10, 1), (2026, 10, 1)),
    v(202511, (2025, 11, 1), (2026, 11, 1)),
    v(202512, (2025, 12, 1), (2026, 12, 1)),
    v(202601, (2026, 1, 1), (2027, 1, 1)),
    v(202602, (2026, 2, 1), (2027, 2, 1)),
    v(202603, (2026, 3, 1), (2027, 3, 1)),
    v(202604, (2026, 4, 1), (2027, 4, 1)),
    v(202605, (2026, 5, 1), (2027, 5, 1)),
    v(202606, (2026, 6, 1), (2027, 6, 1)),
    v(202607, (2026, 7, 1), (2027, 7, 1)),
    v(202608, (2026, 8, 1), (2027, 8, 1)),
    v(202609, (2026, 9, 1), (2027, 9, 1)),
    v(202610, (2026, 10, 1), (2027, 10, 1)),
    v(202611, (2026, 11, 1), (2027, 11, 1)),
    v(202612, (2026, 12, 1), (2027, 12, 1)),
];

fn date((y, m, d): (i32, u32, u32)) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

impl ApiVersion {
    /// Active on `today`: released on or before it, sunset after it.
    pub fn active_on(&self, today: NaiveDate) -> bool {
        matches!((date(self.released), date(self.sunset)), (Some(r), Some(s)) if r <= today && today < s)
    }
}

/// Whether the `LinkedIn-Version` header value names a version active on `today`. `202611` is
/// the only form: LinkedIn answers anything else (malformed, unknown, not yet released or
/// sunset) with `426 NONEXISTENT_VERSION`.
pub fn is_active(header: &str, today: NaiveDate) -> bool {
    if header.len() != 6 || !header.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(n) = header.parse::<u32>() else {
        return false;
    };
    VERSIONS
        .iter()
        .find(|v| v.version == n)
        .is_some_and(|v| v.active_on(today))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn every_row_follows_the_twelve_month_rule_and_the_table_has_no_gap() {
        for (i, row) in VERSIONS.iter().enumerate() {
            let (y, m) = ((row.version / 100) as i32, row.version % 100);
            assert_eq!(row.released, (y, m, 1), "{}", row.version);
            assert_eq!(row.sunset, (y + 1, m, 1), "{}", row.version);
            if let Some(next) = VERSIONS.get(i + 1) {
                let expected = if m == 12 {
                    (y + 1) as u32 * 100 + 1
                } else {
                    row.version + 1
                };
                assert_eq!(next.version, expected);
            }
        }
        assert_eq!(VERSIONS.first().map(|v| v.version), Some(202401));
        assert_eq!(VERSIONS.last().map(|v| v.version), Some(202612));
    }

    #[test]
    fn active_versions_on_the_demo_day() {
        let today = d(2026, 12, 7);
        let active: Vec<u32> = VERSIONS
            .iter()
            .filter(|v| v.active_on(today))
            .map(|v| v.version)
            .collect();
        assert_eq!(active, (202601..=202612).collect::<Vec<u32>>());
        assert!(is_active("202611", today));
        assert!(!is_active("202512", today), "sunset on 2026-12-01");
        assert!(!is_active("202501", today));
        assert!(!is_active("202701", today), "not in the table");
        assert!(!is_active("2026-11", today));
        assert!(!is_active("+20261", today));
        assert!(!is_active("", today));
    }

    #[test]
    fn release_and_sunset_days_are_exact() {
        assert!(!is_active("202506", d(2025, 5, 31)));
        assert!(is_active("202506", d(2025, 6, 1)));
        assert!(is_active("202506", d(2026, 5, 31)));
        assert!(!is_active("202506", d(2026, 6, 1)));
    }
}
