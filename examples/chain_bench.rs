//! Time against size for the parser and `canonicalize` on long op chains, to show that both
//! grow linearly (issue #13: the old quadratic versions took minutes at 200 k ops).
//!
//! Each chain repeats `relu, relu, reshape, reshape` on a `tensor<4xf32>`, so that
//! `relu-of-relu`, `reshape-of-reshape` and `identity-reshape` all fire along it; the module
//! benchmark parses N small functions of one op each.
//!
//! Run it: `cargo run --release --example chain_bench [-- N ...]` (default 10000 100000 1000000).

use mite::ir::text::parse_module;
use mite::ir::verify_module;
use mite::passes::passes::Canonicalize;
use mite::passes::{Pass, Statistics};
use std::fmt::Write;
use std::time::Instant;

/// `@forward` with a chain of `n` ops.
fn chain(n: usize) -> String {
    let mut s =
        String::from("module @chain {\n  func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {\n");
    let mut prev = "x".to_string();
    for i in 0..n {
        let (op, attrs, ty) = match i % 4 {
            2 => ("nn.reshape", " {shape = [2, 2]}", "tensor<2x2xf32>"),
            3 => ("nn.reshape", " {shape = [4]}", "tensor<4xf32>"),
            _ => ("nn.relu", "", "tensor<4xf32>"),
        };
        let _ = writeln!(s, "    %v{i} = {op} %{prev}{attrs} : {ty}");
        prev = format!("v{i}");
    }
    let _ = write!(s, "    return %{prev}\n  }}\n}}\n");
    s
}

/// `n` functions of one op each.
fn functions(n: usize) -> String {
    let mut s = String::from("module @many {\n");
    for i in 0..n {
        let _ = writeln!(
            s,
            "  func @f{i}(%x: tensor<4xf32>) -> tensor<4xf32> {{\n    %0 = nn.relu %x : tensor<4xf32>\n    return %0\n  }}"
        );
    }
    s.push_str("}\n");
    s
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "{:>9}  {:>12}  {:>12}  {:>14}  {:>12}  {:>16}",
        "N", "parse chain", "verify", "canonicalize", "rewrites", "parse N funcs"
    );
    for n in sizes {
        let text = chain(n);
        let start = Instant::now();
        let mut module = parse_module(&text).expect("the chain parses");
        let parse = seconds(start);
        let start = Instant::now();
        verify_module(&module).expect("the chain verifies");
        let verify = seconds(start);
        let mut stats = Statistics::new();
        let start = Instant::now();
        Canonicalize::default()
            .run(&mut module, &mut stats)
            .expect("canonicalize runs");
        let canon = seconds(start);
        let rewrites: u64 = Canonicalize::REWRITES.iter().map(|r| stats.get(r)).sum();
        drop(module);
        let many = functions(n);
        let start = Instant::now();
        let module = parse_module(&many).expect("the functions parse");
        let parse_many = seconds(start);
        assert_eq!(module.functions.len(), n);
        println!(
            "{n:>9}  {parse:>10.3} s  {verify:>10.3} s  {canon:>12.3} s  {rewrites:>12}  {parse_many:>14.3} s"
        );
    }
}
