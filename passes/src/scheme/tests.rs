use super::*;

fn zoo(name: &str) -> Module {
    match name {
        "mcunet-5fps" => mite_zoo::mcunet_5fps(),
        "mbv2-w0.35" => mite_zoo::mbv2_w035(),
        _ => mite_zoo::proxyless_w03(),
    }
}

fn kb(bits: u64) -> f64 {
    bits as f64 / 8.0 / 1024.0
}

#[test]
fn analytic_memory_reproduces_the_paper_scheme_names() {
    let mut report = String::new();
    let mut worst: f64 = 0.0;
    for model in PAPER_MODELS {
        let m = zoo(model.name);
        let l = layers(&m);
        for budget in model.budgets() {
            let scheme = Scheme::Paper {
                model: None,
                budget: budget.to_string(),
            };
            let trained = scheme.resolve(&l).unwrap();
            let got = kb(analytic_extra_bits(&l, &trained));
            let want: f64 = budget.trim_end_matches("kb").parse().unwrap();
            let err = (got - want).abs() / want;
            worst = worst.max(err);
            report += &format!(
                "{} {budget}: {got:.1} KB ({:+.1}%)\n",
                model.name,
                100.0 * (got - want) / want
            );
        }
    }
    println!("{report}");
    assert!(worst <= 0.03, "{report}");
}
