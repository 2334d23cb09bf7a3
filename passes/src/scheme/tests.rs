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

#[test]
fn parses_names() {
    assert_eq!(Scheme::parse("last:6").unwrap(), Scheme::LastK(6));
    assert_eq!(Scheme::parse("bias:3").unwrap(), Scheme::BiasOnly(3));
    assert_eq!(Scheme::parse("classifier").unwrap(), Scheme::Classifier);
    assert_eq!(Scheme::parse("full").unwrap(), Scheme::Full);
    assert_eq!(
        Scheme::parse("paper:mbv2-w0.35:99kb").unwrap().name(),
        "paper:mbv2-w0.35:99kb"
    );
    assert_eq!(
        Scheme::parse("last:x").unwrap_err(),
        SchemeError::BadCount("last:x".into())
    );
    assert!(matches!(
        Scheme::parse("half"),
        Err(SchemeError::UnknownName(_))
    ));
    assert!(matches!(
        Scheme::parse("paper:"),
        Err(SchemeError::UnknownName(_))
    ));
}

#[test]
fn ratios() {
    assert_eq!(Ratio::parse("1/4").unwrap(), Ratio::Quarter);
    assert_eq!(Ratio::parse("0.125").unwrap(), Ratio::Eighth);
    assert_eq!(Ratio::parse("1").unwrap(), Ratio::Full);
    assert_eq!(
        Ratio::parse("1/3").unwrap_err().to_string(),
        "ratio `1/3` is not one of 1/8, 1/4, 1/2, 1"
    );
    assert_eq!(Ratio::Quarter.kept(48), 12);
    assert_eq!(Ratio::Eighth.kept(57), 8);
}

#[test]
fn last_k_and_bias_k_on_the_tiny_model() {
    let mut m = mite_zoo::tiny_int8_cnn();
    let all = layers(&m);
    let n = all.len();
    let trained = Scheme::LastK(2).apply(&mut m).unwrap();
    let want: Vec<String> = all[n - 3..]
        .iter()
        .flat_map(|l| l.weight.iter().chain(l.bias.iter()).cloned())
        .collect();
    let got: Vec<String> = trained.iter().map(|t| t.name.clone()).collect();
    assert_eq!(got, want);
    let trained = Scheme::BiasOnly(1).apply(&mut m).unwrap();
    let names: Vec<String> = trained.iter().map(|t| t.name.clone()).collect();
    let last = &all[n - 2];
    let cls = &all[n - 1];
    assert_eq!(
        names,
        [
            last.bias.clone().unwrap(),
            cls.weight.clone().unwrap(),
            cls.bias.clone().unwrap()
        ]
    );
    // Frozen parameters are marked so in the module.
    let w = last.weight.as_ref().unwrap();
    assert!(!m.globals[w].kind.is_trainable());
    assert_eq!(
        Scheme::LastK(99).apply(&mut m).unwrap_err(),
        SchemeError::TooManyLayers {
            scheme: "last:99".into(),
            asked: 99,
            convs: n - 1
        }
    );
}

#[test]
fn paper_scheme_resolves_slices_and_biases_on_the_path() {
    let l = layers(&mite_zoo::mcunet_5fps());
    let trained = Scheme::parse("paper:49kb").unwrap().resolve(&l).unwrap();
    let show: Vec<String> = trained.iter().map(ToString::to_string).collect();
    // Conv 24 = blocks.8.pointwise1 at 1/4 of its 48 input channels; 27 and 30 at 1/2.
    assert!(show.contains(&"blocks.8.pointwise1.weight[:, 0:12]".to_string()));
    assert!(show.contains(&"blocks.9.pointwise1.weight[:, 0:24]".to_string()));
    // 20 biases (convs 22..41) and the classifier's weight and bias.
    let biases = trained.iter().filter(|t| t.name.ends_with(".bias")).count();
    assert_eq!(biases, 21);
    assert_eq!(trained.len(), 21 + 3 + 1);
}

#[test]
fn scheme_files() {
    let text = r#"
name = "mine"
bias = 4

[[weight]]
layer = 40
ratio = "1/2"

[[weight]]
tensor = "blocks.12.depthwise.weight"
ratio = 0.25
"#;
    let s = Scheme::from_toml(text, "mine.toml").unwrap();
    let l = layers(&mite_zoo::mcunet_5fps());
    let trained: Vec<String> = s
        .resolve(&l)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        trained.contains(&"blocks.13.depthwise.weight[0:288]".to_string()),
        "{trained:?}"
    );
    assert!(
        trained.contains(&"blocks.12.depthwise.weight[0:96]".to_string()),
        "{trained:?}"
    );
    assert_eq!(s.name(), "mine");
    // The last 4 biases (38..41), and by biases_on_path also conv 37's (blocks.12.depthwise,
    // trained below them), and the classifier's.
    assert_eq!(trained.iter().filter(|t| t.ends_with(".bias")).count(), 6);

    let bad = |text: &str| Scheme::from_toml(text, "bad.toml").unwrap_err().to_string();
    assert!(bad("bias = 2\nfoo = 1").contains("unknown field `foo`"));
    assert!(bad("bias = 2\n[[weight]]\nlayer = 3\nratio = \"1/3\"").contains("ratio `1/3`"));
    assert!(bad("bias = 2\n[[weight]]\nratio = 1").contains("exactly one of `layer`"));
    assert!(bad("bias = [").contains("line 1"));

    let out_of_range = Scheme::from_toml("bias = 1\n[[weight]]\nlayer = 42\nratio = 1", "f")
        .unwrap()
        .resolve(&l)
        .unwrap_err();
    assert_eq!(
        out_of_range.to_string(),
        "scheme `f`: layer index 42 is out of range (the model's backbone convs are 0..42)"
    );
    let unknown = Scheme::from_toml("bias = 1\n[[weight]]\ntensor = \"nope\"\nratio = 1", "f")
        .unwrap()
        .resolve(&l)
        .unwrap_err();
    assert!(matches!(unknown, SchemeError::UnknownTensor { .. }));
    let twice = Scheme::from_toml(
        "bias = 1\n[[weight]]\nlayer = 41\nratio = 1\n[[weight]]\ntensor = \"blocks.13.pointwise2.weight\"\nratio = 1",
        "f",
    )
    .unwrap()
    .resolve(&l)
    .unwrap_err();
    assert!(matches!(twice, SchemeError::Duplicate { .. }), "{twice}");
}

#[test]
fn biases_on_path_can_be_turned_off() {
    let l = layers(&mite_zoo::mcunet_5fps());
    let text = "bias = 0\nbiases_on_path = false\n[[weight]]\nlayer = 30\nratio = 1";
    let trained = Scheme::from_toml(text, "f").unwrap().resolve(&l).unwrap();
    let names: Vec<&str> = trained.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "blocks.10.pointwise1.weight",
            "classifier.weight",
            "classifier.bias"
        ]
    );
}
