//! Fuzzing the parser with mutated printed modules: it never panics, every error has a position
//! inside the input, and whatever it accepts prints and parses back to the same text.

use mite_ir::text::{parse_module, print_module, PrintOptions};
use mite_ir::{Attr, Builder, CustomOp, ElemType, Module, Op, Quant, TensorData, TensorType};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::OnceLock;

/// A module using most of the syntax: globals of every kind, quoted names, per-channel
/// quantization, custom ops with zero and two results, locations with escapes, two functions.
fn sample_module() -> Module {
    let mut m = Module::new("fuzz net");
    m.attrs = vec![
        ("source".into(), Attr::Str("model \"v2\".onnx".into())),
        ("odd key".into(), Attr::F32(f32::NEG_INFINITY)),
        ("ids".into(), Attr::Ints(vec![1, -2, 3])),
    ];
    let mut b = Builder::new(&mut m, "forward");
    let x = b.arg("input", TensorType::f32(&[1, 2, 6, 6]));
    let w = b
        .param(
            "blocks.0.conv",
            TensorType::f32(&[4, 1, 3, 3]),
            true,
            Some(TensorData::F32((0..36).map(|i| i as f32 / 7.0).collect())),
        )
        .unwrap();
    let bias = b
        .param(
            "blocks.0.bias",
            TensorType::f32(&[4]),
            false,
            Some(TensorData::F32(vec![0.1, f32::NAN, -0.0, 1e-8])),
        )
        .unwrap();
    let conv = Op::Conv2d {
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        groups: 2,
    };
    let y = b.named("conv \"0\"").op(conv, &[x, w, bias]).unwrap();
    let y = b
        .named("relu6")
        .op(Op::Clip { min: 0.0, max: 6.0 }, &[y])
        .unwrap();
    let q = b
        .op_quant(Op::Quantize {}, &[y], Quant::per_tensor(0.0235, -128))
        .unwrap();
    let qw = b
        .param(
            "q w",
            TensorType::quantized(
                &[2, 4, 1, 1],
                ElemType::I8,
                Quant::PerChannel {
                    axis: 0,
                    scales: vec![0.5, 0.25].into(),
                    zero_points: vec![0, 3].into(),
                },
            ),
            false,
            Some(TensorData::I8(vec![1, -2, 3, -4, 5, -6, 7, -128])),
        )
        .unwrap();
    let qb = b
        .param("qb", TensorType::new(&[2], ElemType::I32), false, None)
        .unwrap();
    let qconv = Op::QConv2d {
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        groups: 1,
        act_min: 0,
        act_max: 127,
    };
    let qc = b
        .op_quant(qconv, &[q, qw, qb], Quant::per_tensor(0.5, 0))
        .unwrap();
    let d = b.op(Op::Dequantize {}, &[qc]).unwrap();
    let flat = b.op(Op::Flatten { axis: 1 }, &[d]).unwrap();
    let mask = b
        .constant(
            "mask",
            TensorType::new(&[2], ElemType::I1),
            TensorData::I1(vec![true, false]),
        )
        .unwrap();
    let fft = Op::Custom(CustomOp {
        name: "acme.fft".into(),
        attrs: vec![
            ("n".into(), Attr::Int(8)),
            ("norm".into(), Attr::Str("ortho\n".into())),
            ("table".into(), Attr::Sym("mask".into())),
            ("inverse".into(), Attr::Bool(false)),
        ],
    });
    let parts = b
        .op_typed(
            fft,
            &[flat, mask],
            vec![TensorType::f32(&[18]), TensorType::f32(&[])],
        )
        .unwrap();
    let tick = Op::Custom(CustomOp {
        name: "acme.tick".into(),
        attrs: vec![],
    });
    b.op_typed(tick, &[], vec![]).unwrap();
    let sm = b.op(Op::Softmax { axis: -1 }, &[flat]).unwrap();
    b.ret(&[sm, parts[1]]);

    let mut b = Builder::new(&mut m, "loss");
    let logits = b.arg("logits", TensorType::f32(&[2, 3]));
    let labels = b.arg("labels", TensorType::new(&[2], ElemType::I32));
    let big = b
        .constant(
            "big table",
            TensorType::new(&[20], ElemType::I64),
            TensorData::I64((0..20).map(|i| i * (i64::MAX / 20)).collect()),
        )
        .unwrap();
    let odd = Op::Custom(CustomOp {
        name: "acme.weird name".into(),
        attrs: vec![("a key".into(), Attr::F32(f32::NAN))],
    });
    b.op_typed(odd, &[big], vec![]).unwrap();
    let loss = b
        .named("loss")
        .op(Op::SoftmaxCrossEntropy {}, &[logits, labels])
        .unwrap();
    b.ret(&[loss]);
    m
}

/// Hand-written text with comments and layout the printer does not produce.
const HAND_WRITTEN: &str = r#"// A module written by hand.
module @m attributes {version = 2} {   // trailing comment
  param @w : tensor<2x2xf32> trainable = dense<[1.0, -2.5, 1e-8, inf]>
  const @c : tensor<2xi8, q<0.5, -3>> = elided<0x0123456789abcdef>
  func @f(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
    %0 = param @w : tensor<2x2xf32>
    // between ops
    %1 = "nn.linear"(%x, %0) : (tensor<1x2xf32>, tensor<2x2xf32>) -> (tensor<1x2xf32>)
    acme.sink
    %2 = nn.relu %1 : tensor<1x2xf32> loc("relu")
    return %2
  }
}
"#;

/// Valid texts to mutate: the sample module printed four ways and the hand-written text.
fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let m = sample_module();
        let mut texts: Vec<String> = [false, true]
            .into_iter()
            .flat_map(|generic| {
                [PrintOptions::default(), PrintOptions::full()]
                    .into_iter()
                    .map(move |o| PrintOptions { generic, ..o })
            })
            .map(|opts| print_module(&m, &opts))
            .collect();
        texts.push(HAND_WRITTEN.to_string());
        texts
    })
}

/// Fragments worth inserting: punctuation, keywords, and the tricky corners of the lexer.
const SNIPPETS: &[&str] = &[
    "%0",
    "%99",
    "%input",
    ",",
    "(",
    ")",
    "{",
    "}",
    "<",
    ">",
    "[",
    "]",
    ":",
    "=",
    "->",
    "-",
    "tensor<",
    "tensor<1x",
    "q<",
    "q<axis=0, [",
    "\"",
    "\\",
    "@",
    "@\"",
    "//",
    "\n",
    "0x",
    "1e",
    "1.5e-3",
    "nan",
    "-inf",
    "é",
    "✓",
    "dense<[",
    "elided<0x",
    "return",
    "return %0",
    "func @g() -> () {",
    "param @w : tensor<f32> frozen",
    "loc(\"",
    "9999999999999999999999",
    "99999999999x99999999999x",
    "acme.x",
    "nn.relu",
    "\"nn.relu\"(",
    " ",
    "\t",
    "\r",
    "true",
];

/// One edit of the text.
#[derive(Clone, Debug)]
enum Mutation {
    /// Remove up to `len` bytes at `at`.
    Delete { at: usize, len: usize },
    /// Insert a snippet at `at`.
    Insert { at: usize, snippet: usize },
    /// Replace the character at `at` with `c`.
    Replace { at: usize, c: char },
    /// Swap two whitespace-separated tokens.
    SwapTokens { a: usize, b: usize },
    /// Cut the text at `at`.
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..12).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(at, snippet)| Mutation::Insert { at, snippet }),
        (any::<usize>(), any::<char>()).prop_map(|(at, c)| Mutation::Replace { at, c }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapTokens { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// The char boundary at or before byte `at % (len + 1)`.
fn boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte ranges of the whitespace-separated tokens of `s`.
fn token_ranges(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((st, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, s.len()));
    }
    out
}

fn apply(text: &mut String, m: &Mutation) {
    match *m {
        Mutation::Delete { at, len } => {
            let start = boundary(text, at);
            let end = boundary(text, start + len.min(text.len() - start));
            text.replace_range(start..end.max(start), "");
        }
        Mutation::Insert { at, snippet } => {
            let at = boundary(text, at);
            text.insert_str(at, SNIPPETS[snippet % SNIPPETS.len()]);
        }
        Mutation::Replace { at, c } => {
            let at = boundary(text, at);
            if let Some(old) = text[at..].chars().next() {
                text.replace_range(at..at + old.len_utf8(), c.encode_utf8(&mut [0; 4]));
            }
        }
        Mutation::SwapTokens { a, b } => {
            let tokens = token_ranges(text);
            if tokens.len() >= 2 {
                let (i, j) = (a % tokens.len(), b % tokens.len());
                let (first, second) = (tokens[i.min(j)], tokens[i.max(j)]);
                if first != second {
                    let swapped = format!(
                        "{}{}{}{}{}",
                        &text[..first.0],
                        &text[second.0..second.1],
                        &text[first.1..second.0],
                        &text[first.0..first.1],
                        &text[second.1..]
                    );
                    *text = swapped;
                }
            }
        }
        Mutation::Truncate { at } => {
            let at = boundary(text, at);
            text.truncate(at);
        }
    }
}

/// What a module the parser accepted must satisfy.
fn on_parsed(m: &Module) -> Result<(), TestCaseError> {
    // The verifier must not panic on whatever the parser accepts, and every error it reports on
    // parsed text carries a position.
    if let Err(errors) = mite_ir::verify::verify_module(m) {
        for e in &errors.0 {
            prop_assert!(
                e.line_col.is_some(),
                "verifier error without a position: {e}"
            );
        }
    }
    let text = print_module(m, &PrintOptions::full());
    let again = parse_module(&text).map_err(|e| {
        TestCaseError::fail(format!(
            "printed text of a parsed module fails: {e}\n{text}"
        ))
    })?;
    prop_assert_eq!(print_module(&again, &PrintOptions::full()), text);
    Ok(())
}

/// Parses `src`: no panic, and an error's position lies within the text.
fn check(src: &str) -> Result<(), TestCaseError> {
    match parse_module(src) {
        Ok(m) => on_parsed(&m),
        Err(e) => {
            let lines: Vec<&str> = src.split('\n').collect();
            let line = e.line as usize;
            prop_assert!(line >= 1 && e.column >= 1, "{e}");
            prop_assert!(line <= lines.len(), "line out of range: {e}");
            let width = lines[line - 1].chars().count();
            prop_assert!(e.column as usize <= width + 1, "column out of range: {e}");
            prop_assert!(!e.message.is_empty());
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_modules_never_panic(
        which in any::<usize>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let corpus = corpus();
        let mut text = corpus[which % corpus.len()].clone();
        for m in &mutations {
            apply(&mut text, m);
        }
        check(&text)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(src in "\\PC{0,200}") {
        check(&src)?;
    }
}

#[test]
fn the_corpus_parses() {
    for text in corpus() {
        let m = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        check(text).unwrap();
        assert!(!m.functions.is_empty());
    }
}
