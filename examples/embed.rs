//! Embedding mite: compile a training step for a zoo model and print its memory report.
//!
//! The model is MCUNet-5FPS from the zoo (architecture only, seeded weights: no files needed);
//! the last 6 backbone convolutions and the classifier are trained, int8 with QAS. Run it:
//! `cargo run --release --example embed [full|classifier|last:K|bias:K]`.

use mite::ir::memory::memory_report;
use mite::passes::passes::{build_training_step, TrainConfig};
use mite::passes::scheme::Scheme;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scheme_text = std::env::args().nth(1).unwrap_or_else(|| "last:6".into());
    let scheme = Scheme::parse(&scheme_text)?;
    let mut module = mite::zoo::mcunet_5fps();
    scheme.apply(&mut module)?;
    build_training_step(&mut module, &TrainConfig::default())?;
    let report = memory_report(&module, "train_step")?;
    println!("MCUNet-5FPS, scheme {scheme_text}");
    println!("{report}");
    println!("largest arena buffers:");
    let mut buffers = report.buffers.clone();
    buffers.sort_by_key(|b| std::cmp::Reverse(b.size));
    for b in buffers.iter().take(5) {
        println!(
            "  {:>8} bytes at {:>8}  {:<16} {} (steps {}..={})",
            b.size,
            b.offset,
            b.kind.name(),
            b.what,
            b.live.0,
            b.live.1
        );
    }
    Ok(())
}
