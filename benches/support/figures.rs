//! How the benches print numbers.

/// `1234567` as `1,234,567`.
pub fn thousands(mut n: u64) -> String {
    let mut groups = Vec::new();
    while n >= 1000 {
        groups.push(n % 1000);
        n /= 1000;
    }
    let mut out = n.to_string();
    for group in groups.iter().rev() {
        out.push_str(&format!(",{group:03}"));
    }
    out
}

/// The median of some wall times (the upper one of an even count).
#[allow(dead_code)] // each bench includes this file; those that time once take no median
pub fn median(mut walls: Vec<f64>) -> f64 {
    walls.sort_by(f64::total_cmp);
    walls.get(walls.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The lowest and highest of some figures (infinities when there are none).
#[allow(dead_code)] // as `median`
pub fn bounds(figures: &[f64]) -> (f64, f64) {
    let low = figures.iter().copied().fold(f64::INFINITY, f64::min);
    let high = figures.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (low, high)
}

/// The lowest and highest of some ratios, `2.41–2.63×`.
#[allow(dead_code)] // as `median`
pub fn range(ratios: &[f64]) -> String {
    let (low, high) = bounds(ratios);
    format!("{low:.2}–{high:.2}×")
}
