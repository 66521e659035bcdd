//! Attribution models: how a deal's amount is split over the touches that count for it.
//!
//! Touches come in chronological order (the caller orders same-day touches by campaign, then
//! organization). Every model turns them into integer weights, and [`split`] divides the amount
//! by those weights with [`allocate`], so the parts always add up to the amount exactly.

use super::money::allocate;

/// The attribution models, with the numbers of `rp.api.v1.AttributionModel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    FirstTouch = 1,
    LastTouch = 2,
    Linear = 3,
    TimeDecay = 4,
    UShaped = 5,
}

impl Model {
    pub const ALL: [Model; 5] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::Linear,
        Model::TimeDecay,
        Model::UShaped,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::Linear => "linear",
            Model::TimeDecay => "time_decay",
            Model::UShaped => "u_shaped",
        }
    }
}

/// The time-decay half-life in whole days (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfLife(u32);

impl HalfLife {
    pub const DEFAULT_DAYS: u32 = 7;
    pub const MAX_DAYS: u32 = 3_650;

    pub fn days(days: u32) -> Result<Self, String> {
        if (1..=Self::MAX_DAYS).contains(&days) {
            Ok(Self(days))
        } else {
            Err(format!(
                "a half-life is 1 to {} days (got {days})",
                Self::MAX_DAYS
            ))
        }
    }

    pub fn as_days(self) -> u32 {
        self.0
    }
}

impl Default for HalfLife {
    fn default() -> Self {
        Self(Self::DEFAULT_DAYS)
    }
}

/// The time-decay weight of a touch `age_days` before the deal's end: `2^40 * 2^(-age/half-life)`
/// rounded, at least 1. A touch one half-life older weighs half as much; whole half-lives give
/// exact powers of two.
pub fn decay_weight(age_days: u32, half_life: HalfLife) -> u128 {
    let exponent = 40.0 - f64::from(age_days) / f64::from(half_life.as_days());
    // `as` saturates: tiny weights become 0, then 1.
    (exponent.exp2().round() as u128).max(1)
}

/// The weight of each touch under `model`. `ages_days[i]` is touch i's age at the deal's end.
pub fn weights(model: Model, ages_days: &[u32], half_life: HalfLife) -> Vec<u128> {
    let n = ages_days.len();
    let mut w = vec![0u128; n];
    if n == 0 {
        return w;
    }
    match model {
        Model::FirstTouch => w[0] = 1,
        Model::LastTouch => w[n - 1] = 1,
        Model::Linear => w.fill(1),
        Model::TimeDecay => {
            for (wi, age) in w.iter_mut().zip(ages_days) {
                *wi = decay_weight(*age, half_life);
            }
        }
        Model::UShaped => match n {
            1 => w[0] = 1,
            2 => w.fill(1),
            _ => {
                // First and last 40% each, the middle n-2 touches share 20%: weights
                // 2(n-2) : 1 : ... : 1 : 2(n-2), out of 5(n-2).
                let ends = 2 * (n as u128 - 2);
                w.fill(1);
                w[0] = ends;
                w[n - 1] = ends;
            }
        },
    }
    w
}

/// Splits `amount_units` over the touches under `model`; the parts add up to `amount_units`.
pub fn split(
    amount_units: u128,
    model: Model,
    ages_days: &[u32],
    half_life: HalfLife,
) -> Vec<u128> {
    allocate(amount_units, &weights(model, ages_days, half_life))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H7: HalfLife = HalfLife(7);

    #[test]
    fn given_one_touch_when_split_then_every_model_gives_it_everything() {
        for m in Model::ALL {
            assert_eq!(split(1_000_000, m, &[12], H7), vec![1_000_000], "{m:?}");
        }
    }

    #[test]
    fn given_no_touch_when_split_then_nobody_gets_credit() {
        for m in Model::ALL {
            assert!(split(1_000_000, m, &[], H7).is_empty(), "{m:?}");
        }
    }

    #[test]
    fn given_three_touches_when_split_then_each_model_follows_its_rule() {
        // $10,000.00 = 1,000,000 cents; touches 28, 14 and 7 days before the deal's end.
        let ages = [28, 14, 7];
        assert_eq!(
            split(1_000_000, Model::FirstTouch, &ages, H7),
            vec![1_000_000, 0, 0]
        );
        assert_eq!(
            split(1_000_000, Model::LastTouch, &ages, H7),
            vec![0, 0, 1_000_000]
        );
        // 333,333.33 each: the leftover cent goes to the first touch (equal remainders).
        assert_eq!(
            split(1_000_000, Model::Linear, &ages, H7),
            vec![333_334, 333_333, 333_333]
        );
        // 40/20/40.
        assert_eq!(
            split(1_000_000, Model::UShaped, &ages, H7),
            vec![400_000, 200_000, 400_000]
        );
        // Half-lives 4, 2 and 1 ago: weights 1/16, 1/4, 1/2 = 1:4:8 (sum 13).
        // 1e6/13 = 76,923.08, 4e6/13 = 307,692.31, 8e6/13 = 615,384.62 -> 76,923 + 307,692 +
        // 615,384 = 999,999; the leftover cent goes to the largest remainder (.62).
        assert_eq!(
            split(1_000_000, Model::TimeDecay, &ages, H7),
            vec![76_923, 307_692, 615_385]
        );
    }

    #[test]
    fn given_two_touches_when_u_shaped_then_fifty_fifty() {
        assert_eq!(split(1_001, Model::UShaped, &[3, 1], H7), vec![501, 500]);
    }

    #[test]
    fn given_five_touches_when_u_shaped_then_the_middle_three_share_twenty_percent() {
        // 40% of 900 = 360 each end; 20% = 180 over three = 60 each.
        assert_eq!(
            split(900, Model::UShaped, &[5, 4, 3, 2, 1], H7),
            vec![360, 60, 60, 60, 360]
        );
    }

    #[test]
    fn given_a_half_life_when_weighing_then_each_half_life_halves_the_weight() {
        assert_eq!(decay_weight(0, H7), 1 << 40);
        assert_eq!(decay_weight(7, H7), 1 << 39);
        assert_eq!(decay_weight(70, H7), 1 << 30);
        // 3.5 days is half a half-life: 2^39.5 = 777,472,127,993.8 -> 777,472,127,994.
        assert_eq!(decay_weight(7, HalfLife(14)), 777_472_127_994);
        // Very old touches still weigh something, so the weights never sum to zero.
        assert_eq!(decay_weight(3_650, HalfLife(1)), 1);
        let h30 = HalfLife::days(30).unwrap();
        assert_eq!(decay_weight(30, h30), 1 << 39);
    }

    #[test]
    fn given_any_amount_and_touches_when_split_then_every_model_adds_up_exactly() {
        for amount in [0u128, 1, 7, 99_999, 123_456_789_012] {
            for ages in [vec![0u32], vec![1, 1], vec![40, 20, 10, 0], vec![9; 11]] {
                for m in Model::ALL {
                    let parts = split(amount, m, &ages, H7);
                    assert_eq!(parts.iter().sum::<u128>(), amount, "{m:?} {ages:?}");
                }
            }
        }
    }

    #[test]
    fn half_lives_are_bounded_and_models_have_stable_codes() {
        assert!(HalfLife::days(0).is_err());
        assert!(HalfLife::days(3_651).is_err());
        assert_eq!(HalfLife::default().as_days(), 7);
        for m in Model::ALL {
            assert_eq!(Model::from_code(m.code()), Some(m));
        }
        assert_eq!(Model::from_code(0), None);
        assert_eq!(Model::from_code(6), None);
    }
}
