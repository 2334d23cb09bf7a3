//! Scheme search (NOTES §3): contribution analysis of candidate updates ([`contrib`]) and an
//! evolutionary search, compared with random search, for the scheme with the best summed
//! contribution under a memory budget ([`evolve`]).

pub mod contrib;
pub mod evolve;

/// Parses a memory budget: `100K`, `100KB`, `100kb` (KiB), `1M` (MiB) or a number of bytes.
pub fn parse_budget(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.strip_suffix('k') {
        Some(n) => (n, 1024.0),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 1024.0 * 1024.0),
            None => (t, 1.0),
        },
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok((v * unit).round() as u64),
        _ => Err(format!(
            "expected a size such as 100K, 100KB or 102400, found `{text}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert_eq!(parse_budget("100K").unwrap(), 102_400);
        assert_eq!(parse_budget("100kb").unwrap(), 102_400);
        assert_eq!(parse_budget("512").unwrap(), 512);
        assert_eq!(parse_budget("1M").unwrap(), 1 << 20);
        assert!(parse_budget("lots").is_err());
        assert!(parse_budget("-3K").is_err());
    }
}
