//! Repetitions to figures: every number the bench reports is a median of its repetitions with
//! the min and max, and every QUIC/TCP ratio is taken repetition by repetition (rep i of QUIC
//! over rep i of TCP, measured back to back in the same run) before its median is taken.

use serde::Serialize;

/// The median, min and max of a set of repetitions, with the repetitions themselves.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub reps: Vec<f64>,
}

impl Figure {
    /// `None` for no repetitions; NaN values are left out.
    pub fn of(reps: &[f64]) -> Option<Figure> {
        let mut sorted: Vec<f64> = reps.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Figure {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            reps: reps.to_vec(),
        })
    }
}

/// One measured quantity of one variant in one case, e.g. ("1 KiB", "quic", "events/s").
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub case: String,
    pub variant: String,
    pub name: String,
    pub unit: String,
    pub figure: Figure,
}

/// `numerator / denominator` of one quantity in one case, paired by repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub case: String,
    pub name: String,
    pub numerator: String,
    pub denominator: String,
    pub figure: Figure,
}

/// Collects repetitions in the order they were first pushed.
#[derive(Debug, Default)]
pub struct Collector {
    keys: Vec<(String, String, String)>,
    values: Vec<Vec<f64>>,
    units: Vec<String>,
}

impl Collector {
    /// Adds one repetition of (`case`, `variant`, `name`).
    pub fn push(&mut self, case: &str, variant: &str, name: &str, unit: &str, value: f64) {
        let key = (case.to_owned(), variant.to_owned(), name.to_owned());
        match self.keys.iter().position(|k| *k == key) {
            Some(i) => self.values[i].push(value),
            None => {
                self.keys.push(key);
                self.values.push(vec![value]);
                self.units.push(unit.to_owned());
            }
        }
    }

    /// The repetitions of one quantity, in order.
    pub fn reps(&self, case: &str, variant: &str, name: &str) -> Option<&[f64]> {
        let i = self
            .keys
            .iter()
            .position(|(c, v, n)| c == case && v == variant && n == name)?;
        Some(&self.values[i])
    }

    /// Every quantity as a figure.
    pub fn metrics(&self) -> Vec<Metric> {
        let rows = self.keys.iter().zip(&self.values).zip(&self.units);
        rows.filter_map(|(((case, variant, name), reps), unit)| {
            let figure = Figure::of(reps)?;
            Some(Metric {
                case: case.clone(),
                variant: variant.clone(),
                name: name.clone(),
                unit: unit.clone(),
                figure,
            })
        })
        .collect()
    }

    /// `numerator / denominator` per repetition (repetitions missing on either side are
    /// skipped), or `None` if there is no pair.
    pub fn ratio(
        &self,
        case: &str,
        name: &str,
        numerator: &str,
        denominator: &str,
    ) -> Option<Ratio> {
        let top = self.reps(case, numerator, name)?;
        let bottom = self.reps(case, denominator, name)?;
        let pairs: Vec<f64> = top
            .iter()
            .zip(bottom)
            .filter(|(_, b)| **b != 0.0)
            .map(|(t, b)| t / b)
            .collect();
        Some(Ratio {
            case: case.to_owned(),
            name: name.to_owned(),
            numerator: numerator.to_owned(),
            denominator: denominator.to_owned(),
            figure: Figure::of(&pairs)?,
        })
    }

    /// Every case that has `name`, in first-seen order.
    pub fn cases(&self, name: &str) -> Vec<String> {
        let mut cases: Vec<String> = Vec::new();
        for (case, _, n) in &self.keys {
            if n == name && !cases.contains(case) {
                cases.push(case.clone());
            }
        }
        cases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let f = Figure::of(&[3.0, 1.0, 2.0, 10.0, 4.0]).unwrap();
        assert_eq!((f.median, f.min, f.max), (3.0, 1.0, 10.0));
        assert_eq!(Figure::of(&[1.0, 2.0, 3.0, 4.0]).unwrap().median, 2.5);
        assert!(Figure::of(&[]).is_none());
    }

    #[test]
    fn ratios_are_paired_by_repetition() {
        let mut c = Collector::default();
        for (q, t) in [(8.0, 10.0), (9.0, 9.0), (30.0, 10.0)] {
            c.push("1 KiB", "quic", "events/s", "1/s", q);
            c.push("1 KiB", "tcp", "events/s", "1/s", t);
        }
        let r = c.ratio("1 KiB", "events/s", "quic", "tcp").unwrap();
        assert_eq!(r.figure.reps, vec![0.8, 1.0, 3.0]);
        assert_eq!(r.figure.median, 1.0);
    }
}
