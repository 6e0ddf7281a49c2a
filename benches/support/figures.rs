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
