//! C literals that read back as exactly the Rust values (integers at their extremes, floats with
//! the shortest round-trip digits).

use std::fmt::Write as _;

/// An `int32_t` literal (`INT32_MIN` needs a subtraction in C).
pub fn i32_lit(v: i32) -> String {
    if v == i32::MIN {
        "(-2147483647 - 1)".to_owned()
    } else {
        v.to_string()
    }
}

/// An `int64_t` literal.
pub fn i64_lit(v: i64) -> String {
    if v == i64::MIN {
        "(-INT64_C(9223372036854775807) - 1)".to_owned()
    } else {
        format!("INT64_C({v})")
    }
}

/// A `float` literal with the exact value of `v`.
pub fn f32_lit(v: f32) -> String {
    if v.is_nan() {
        "NAN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "(-INFINITY)" }.to_owned()
    } else {
        // LowerExp prints the shortest digits that round-trip; C rounds them back exactly.
        format!("{v:e}f")
    }
}

/// A `double` literal with the exact value of `v`.
pub fn f64_lit(v: f64) -> String {
    if v.is_nan() {
        "((double)NAN)".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 {
            "((double)INFINITY)"
        } else {
            "(-(double)INFINITY)"
        }
        .to_owned()
    } else {
        format!("{v:e}")
    }
}

/// The elements of an array initialiser, 12 to a line, indented by four spaces.
pub fn elements<T>(items: &[T], lit: impl Fn(&T) -> String) -> String {
    let mut s = String::new();
    for (i, v) in items.iter().enumerate() {
        if i % 12 == 0 {
            s.push_str("\n    ");
        } else {
            s.push(' ');
        }
        let _ = write!(s, "{},", lit(v));
    }
    s.push('\n');
    s
}

/// A C identifier made of `name`'s letters, digits and underscores.
pub fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(i32_lit(i32::MIN), "(-2147483647 - 1)");
        assert_eq!(i32_lit(-5), "-5");
        assert_eq!(i64_lit(7), "INT64_C(7)");
        assert_eq!(f32_lit(0.5), "5e-1f");
        assert_eq!(f32_lit(f32::NEG_INFINITY), "(-INFINITY)");
        assert_eq!(f64_lit(1e-300), "1e-300");
        assert_eq!(ident("blocks.3/conv-1"), "blocks_3_conv_1");
        assert_eq!(ident("3x"), "_3x");
        assert_eq!(elements(&[1, 2], |v| v.to_string()), "\n    1, 2,\n");
    }

    #[test]
    fn float_literals_round_trip() {
        for v in [
            0.1_f32,
            1.0 / 3.0,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            -2.5e-7,
        ] {
            let lit = f32_lit(v);
            let parsed: f32 = lit.trim_end_matches('f').parse().unwrap();
            assert_eq!(parsed.to_bits(), v.to_bits(), "{lit}");
        }
        for v in [0.1_f64, 1.0 / 3.0, 5e-324, f64::MAX] {
            let parsed: f64 = f64_lit(v).parse().unwrap();
            assert_eq!(parsed.to_bits(), v.to_bits());
        }
    }
}
