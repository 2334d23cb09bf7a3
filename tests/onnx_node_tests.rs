//! The float (and int8) semantics of every operator mite imports, against the ONNX backend node
//! tests of the `onnx` PyPI package.
//!
//! The test data is `$MITE_ONNX_NODE_TESTS` if set, otherwise `tools/onnx_node_tests.py` is run
//! into `target/onnx-node-tests` with `python3` (or `$MITE_PYTHON`). Without python3 or its `onnx`
//! module the test prints `SKIPPED onnx_node_tests: …` and passes, unless `MITE_REQUIRE_TOOLS=1`.
//!
//! Each case (`model.onnx` and `test_data_set_*`) is loaded with `mite::onnx::load`, imported
//! with `import_model` and run by the interpreter on the inputs; every output is compared with
//! the expected one:
//!
//! - float: `|actual − expected| ≤ ATOL + RTOL · |expected|` with `RTOL = 1e-3`, `ATOL = 1e-5`
//!   (NaN matches NaN);
//! - integers: exactly. A `UINT8` output is computed by mite as `i8` with the zero point shifted
//!   by −128 (see `mite_onnx::import::convert`), so `actual + 128` must equal the expected value.
//!
//! The node tests pass weights, shapes, pads, clip bounds and quantization parameters as graph
//! inputs, while mite (like any compiler of trained models) needs most of them as constants. A
//! case that does not import as it is is therefore retried with the values of its data set
//! turned into initializers: first every input but the first, then every input. Likewise, the
//! onnx package builds its tests at the newest opset (22 to 28), above mite's
//! [`MAX_OPSET`]; for the operators in [`TYPE_ONLY_ABOVE_MAX_OPSET`], whose newer versions only
//! add element types, a case refused for its opset is retried with the opset set to
//! [`MAX_OPSET`]. The report names the variant each result comes from.
//!
//! Each case is classified `pass`, `fail: mismatch (…)`, `unsupported: <the importer's error>`
//! or `error: …`; the table and the totals are printed and written to
//! `target/onnx-node-tests/report.txt`. The test fails when a case that imports computes a wrong
//! result or fails to run, when an import panics or refuses without a message, or when fewer
//! than [`PASS_FLOOR`] cases pass.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use mite::interp::{Interpreter, Tensor as ExecTensor};
use mite::ir::{Module, TensorData as IrData, TensorType};
use mite::onnx::import::convert::MAX_OPSET;
use mite::onnx::tensor_file::load_tensor;
use mite::onnx::{import_model, ImportOptions, OnnxModel, Tensor, TensorData};

const TEST: &str = "onnx_node_tests";

/// Relative tolerance of float outputs.
const RTOL: f32 = 1e-3;
/// Absolute tolerance of float outputs.
const ATOL: f32 = 1e-5;

/// The number of cases passing with onnx 1.23.2 when this test was written: the test fails if
/// fewer pass. Raise it when the importer or the interpreter learns more.
const PASS_FLOOR: usize = 111;

/// Operators whose versions above opset 21 (checked against `onnx.defs` of onnx 1.23.2) only add
/// element types (bfloat16, float4/8, int2/4): Conv, AveragePool, GlobalAveragePool and MaxPool
/// (22), Flatten, Reshape, Transpose and Pad (23 to 25), QuantizeLinear and DequantizeLinear
/// (23 to 28; 23 also adds the optional `precision` / `output_dtype` attributes, whose defaults
/// keep the opset-21 behaviour). Their tests are retried at [`MAX_OPSET`].
const TYPE_ONLY_ABOVE_MAX_OPSET: &[&str] = &[
    "AveragePool",
    "Conv",
    "DequantizeLinear",
    "Flatten",
    "GlobalAveragePool",
    "MaxPool",
    "Pad",
    "QuantizeLinear",
    "Reshape",
    "Transpose",
];

/// Which graph inputs are turned into initializers holding the data set's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Freeze {
    /// None: the graph as it is.
    Nothing,
    /// Every input but the first.
    AllButFirst,
    /// Every input.
    All,
}

/// How a case was imported: the graph as it is, or a retry (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Variant {
    /// The opset of the file, when it was replaced by [`MAX_OPSET`].
    pinned_from: Option<i64>,
    freeze: Freeze,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(opset) = self.pinned_from {
            parts.push(format!("opset {opset}->{MAX_OPSET}"));
        }
        match self.freeze {
            Freeze::Nothing => {}
            Freeze::AllButFirst => parts.push("inputs 1.. constant".to_owned()),
            Freeze::All => parts.push("all inputs constant".to_owned()),
        }
        if parts.is_empty() {
            f.write_str("as is")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The inputs and expected outputs of one `test_data_set_*` directory.
struct DataSet {
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

/// The result of one case.
enum Outcome {
    Pass,
    /// The outputs differ from the expected ones (a semantics bug).
    Mismatch(String),
    /// The importer refused the model, with this message.
    Unsupported(String),
    /// Anything else: unreadable test data, an import panic or empty message, a run error.
    Error(String),
}

/// One line of the report.
struct Row {
    name: String,
    /// The variants that imported (and were run), in the order tried.
    imported: Vec<Variant>,
    outcome: Outcome,
    /// The import errors of the variants tried, for the details section.
    attempts: Vec<(Variant, String)>,
}

impl Row {
    fn result(&self) -> String {
        // A pass names the variants that imported, a failure the one that failed.
        let shown = match &self.outcome {
            Outcome::Pass => &self.imported[..],
            _ => &self.imported[self.imported.len().saturating_sub(1)..],
        };
        let variant = if shown.is_empty() || shown == [AS_IS] {
            String::new()
        } else {
            let names: Vec<String> = shown.iter().map(Variant::to_string).collect();
            format!(" [{}]", names.join("; "))
        };
        match &self.outcome {
            Outcome::Pass => format!("pass{variant}"),
            Outcome::Mismatch(m) => format!("fail: mismatch ({m}){variant}"),
            Outcome::Unsupported(m) => format!("unsupported: {}", one_line(m)),
            Outcome::Error(m) => format!("error: {}{variant}", one_line(m)),
        }
    }

    /// Whether this case makes the test fail.
    fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Mismatch(_) | Outcome::Error(_))
    }
}

const AS_IS: Variant = Variant {
    pinned_from: None,
    freeze: Freeze::Nothing,
};

/// A multi-line message on one line.
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn require_tools() -> bool {
    std::env::var("MITE_REQUIRE_TOOLS")
        .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// Skips the test (returns `None`) or, with `MITE_REQUIRE_TOOLS=1`, fails it.
fn skip(why: &str) -> Option<PathBuf> {
    if require_tools() {
        panic!("{TEST}: {why} (MITE_REQUIRE_TOOLS=1)");
    }
    eprintln!("SKIPPED {TEST}: {why}");
    None
}

/// `target/onnx-node-tests` of the workspace: where the data is generated and the report written.
fn output_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/onnx-node-tests")
}

/// The directory of the node tests: `$MITE_ONNX_NODE_TESTS`, or freshly written by the script.
fn test_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MITE_ONNX_NODE_TESTS") {
        return Some(PathBuf::from(dir));
    }
    let python = std::env::var("MITE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    mite_test_support::tool(TEST, &python)?;
    let has_onnx = Command::new(&python)
        .args(["-c", "import onnx, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_onnx {
        return skip(&format!(
            "`{python}` cannot import the `onnx` and `numpy` modules (pip install onnx numpy)"
        ));
    }
    let out = output_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/onnx_node_tests.py");
    let run = Command::new(&python)
        .arg(&script)
        .arg(&out)
        .output()
        .expect("running tools/onnx_node_tests.py");
    assert!(
        run.status.success(),
        "{} {} failed:\n{}",
        script.display(),
        out.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    Some(out)
}

/// The case names listed in `manifest.txt`.
fn manifest(dir: &Path) -> Vec<String> {
    let path = dir.join("manifest.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Reads `{prefix}_0.pb`, `{prefix}_1.pb`, … of a data set directory.
fn read_tensors(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    let mut tensors = Vec::new();
    loop {
        let path = dir.join(format!("{prefix}_{}.pb", tensors.len()));
        if !path.is_file() {
            return Ok(tensors);
        }
        let (_, tensor) = load_tensor(&path).map_err(|e| e.to_string())?;
        tensors.push(tensor);
    }
}

/// The data sets of a case, in order.
fn read_data_sets(case_dir: &Path) -> Result<Vec<DataSet>, String> {
    let mut sets = Vec::new();
    loop {
        let dir = case_dir.join(format!("test_data_set_{}", sets.len()));
        if !dir.is_dir() {
            break;
        }
        sets.push(DataSet {
            inputs: read_tensors(&dir, "input")?,
            outputs: read_tensors(&dir, "output")?,
        });
    }
    if sets.is_empty() {
        return Err(format!("{}: no test_data_set_0", case_dir.display()));
    }
    Ok(sets)
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// `model` changed as `variant` says, with frozen inputs taken from `data`.
fn apply_variant(model: &OnnxModel, data: &DataSet, variant: Variant) -> OnnxModel {
    let mut model = model.clone();
    if variant.pinned_from.is_some() {
        for opset in &mut model.opsets {
            if opset.domain.is_empty() || opset.domain == "ai.onnx" {
                opset.version = MAX_OPSET;
            }
        }
    }
    let first = match variant.freeze {
        Freeze::Nothing => return model,
        Freeze::AllButFirst => 1,
        Freeze::All => 0,
    };
    // Data set input `i` is the value of graph input `i`.
    let names: Vec<String> = model.graph.inputs.iter().map(|i| i.name.clone()).collect();
    for (name, tensor) in names.iter().zip(&data.inputs).skip(first) {
        model
            .graph
            .initializers
            .insert(name.clone(), tensor.clone());
    }
    model
}

/// The variants to try, in order: the graph as it is first.
fn variants(model: &OnnxModel) -> Vec<Variant> {
    let opset = model.opset_version("").unwrap_or(1);
    let pinnable = opset > MAX_OPSET
        && model
            .graph
            .nodes
            .iter()
            .all(|n| TYPE_ONLY_ABOVE_MAX_OPSET.contains(&n.op_type.as_str()));
    let runtime_inputs = model.graph.runtime_inputs().count();
    let mut freezes = vec![Freeze::Nothing];
    if runtime_inputs >= 2 {
        freezes.push(Freeze::AllButFirst);
    }
    if runtime_inputs >= 1 {
        freezes.push(Freeze::All);
    }
    if opset <= MAX_OPSET {
        return freezes
            .into_iter()
            .map(|freeze| Variant {
                pinned_from: None,
                freeze,
            })
            .collect();
    }
    // Refused for its opset as it is; retried at MAX_OPSET when that keeps the semantics.
    let mut variants = vec![AS_IS];
    if pinnable {
        variants.extend(freezes.into_iter().map(|freeze| Variant {
            pinned_from: Some(opset),
            freeze,
        }));
    }
    variants
}

/// An interpreter input of type `ty` holding `tensor`.
fn exec_input(tensor: &Tensor, ty: &TensorType) -> Result<ExecTensor, String> {
    if tensor.dims() != ty.shape.as_slice() {
        return Err(format!("input of shape {:?} given for {ty}", tensor.dims()));
    }
    let data = match tensor.data() {
        TensorData::F32(v) => IrData::F32(v.clone()),
        TensorData::I8(v) => IrData::I8(v.clone()),
        TensorData::I32(v) => IrData::I32(v.clone()),
        TensorData::I64(v) => IrData::I64(v.clone()),
        TensorData::Bool(v) => IrData::I1(v.clone()),
        other => return Err(format!("no IR element type for {}", other.data_type())),
    };
    ExecTensor::new(ty.clone(), data).map_err(|e| e.to_string())
}

/// Runs `module` on the runtime inputs of `model` taken from `data`.
fn run(module: &Module, model: &OnnxModel, data: &DataSet) -> Result<Vec<ExecTensor>, String> {
    let func = module
        .function("forward")
        .ok_or("the module has no @forward")?;
    let runtime: Vec<&str> = model
        .graph
        .runtime_inputs()
        .map(|i| i.name.as_str())
        .collect();
    if runtime.len() != func.args().len() {
        return Err(format!(
            "{} runtime inputs but @forward has {} arguments",
            runtime.len(),
            func.args().len()
        ));
    }
    let mut inputs = Vec::new();
    for (name, &arg) in runtime.iter().zip(func.args()) {
        let index = model
            .graph
            .inputs
            .iter()
            .position(|i| i.name == *name)
            .expect("a runtime input is a graph input");
        let tensor = data
            .inputs
            .get(index)
            .ok_or_else(|| format!("the data set has no input {index} (`{name}`)"))?;
        inputs.push(exec_input(tensor, func.ty(arg)).map_err(|e| format!("input `{name}`: {e}"))?);
    }
    let interp = Interpreter::new(module).map_err(|e| e.to_string())?;
    interp.run("forward", &inputs).map_err(|e| e.to_string())
}

/// `None` if `actual` matches `expected`, otherwise what differs.
fn compare(actual: &ExecTensor, expected: &Tensor) -> Option<String> {
    if actual.shape() != expected.dims() {
        return Some(format!(
            "shape {:?}, expected {:?}",
            actual.shape(),
            expected.dims()
        ));
    }
    // (actual, expected) pairs as f64, and whether they must be equal exactly.
    let (pairs, exact): (Vec<(f64, f64)>, bool) = match (&actual.data, expected.data()) {
        (IrData::F32(a), TensorData::F32(e)) => (pairs(a, e), false),
        (IrData::I8(a), TensorData::I8(e)) => (pairs(a, e), true),
        (IrData::I32(a), TensorData::I32(e)) => (pairs(a, e), true),
        (IrData::I64(a), TensorData::I64(e)) => (
            a.iter()
                .zip(e)
                .map(|(&x, &y)| (x as f64, y as f64))
                .collect(),
            true,
        ),
        (IrData::I1(a), TensorData::Bool(e)) => (
            a.iter()
                .zip(e)
                .map(|(&x, &y)| (f64::from(u8::from(x)), f64::from(u8::from(y))))
                .collect(),
            true,
        ),
        // mite's uint8 is i8 with the zero point shifted by -128.
        (IrData::I8(a), TensorData::U8(e)) if actual.ty.quant.is_some() => (
            a.iter()
                .zip(e)
                .map(|(&x, &y)| (f64::from(x) + 128.0, f64::from(y)))
                .collect(),
            true,
        ),
        (a, e) => {
            return Some(format!(
                "computed {} elements, expected {}",
                a.elem(),
                e.data_type()
            ))
        }
    };
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for (i, &(a, e)) in pairs.iter().enumerate() {
        let ok = if exact {
            a == e
        } else if a.is_nan() || e.is_nan() {
            a.is_nan() && e.is_nan()
        } else {
            (a - e).abs() <= f64::from(ATOL) + f64::from(RTOL) * e.abs()
        };
        if !ok {
            bad += 1;
            let err = (a - e).abs();
            if worst.is_none_or(|(_, w)| err > w || err.is_nan()) {
                worst = Some((i, err));
            }
        }
    }
    let (i, err) = worst?;
    // Float values are f32 widened to f64: print them as f32.
    let (a, e) = pairs[i];
    let (a, e) = if exact {
        (a.to_string(), e.to_string())
    } else {
        ((a as f32).to_string(), (e as f32).to_string())
    };
    Some(format!(
        "max abs err {err:.3e} at element {i}: {a} vs expected {e}; {bad} of {} elements off",
        pairs.len()
    ))
}

fn pairs<T: Copy + Into<f64>>(a: &[T], e: &[T]) -> Vec<(f64, f64)> {
    a.iter()
        .zip(e)
        .map(|(&x, &y)| (x.into(), y.into()))
        .collect()
}

/// Imports and runs one case on every data set.
fn check_case(dir: &Path, name: &str) -> Row {
    let mut row = Row {
        name: name.to_owned(),
        imported: Vec::new(),
        outcome: Outcome::Pass,
        attempts: Vec::new(),
    };
    let case_dir = dir.join(name);
    let model = match mite::onnx::load(case_dir.join("model.onnx")) {
        Ok(model) => model,
        Err(e) => {
            row.outcome = Outcome::Unsupported(e.to_string());
            return row;
        }
    };
    let data_sets = match read_data_sets(&case_dir) {
        Ok(sets) => sets,
        Err(e) => {
            // Unreadable data (e.g. float8 tensors) is fine when the model is refused anyway:
            // try the variants that need no data; their last refusal is the answer.
            let no_data = DataSet {
                inputs: Vec::new(),
                outputs: Vec::new(),
            };
            let mut refusal = None;
            for variant in variants(&model) {
                if variant.freeze != Freeze::Nothing {
                    continue;
                }
                match import(&apply_variant(&model, &no_data, variant)) {
                    Ok(Err(message)) if !message.trim().is_empty() => {
                        refusal = Some(format!("[{variant}] {message}"));
                        row.attempts.push((variant, message));
                    }
                    _ => {
                        refusal = None;
                        break;
                    }
                }
            }
            row.outcome = match refusal {
                Some(message) => Outcome::Unsupported(message),
                None => Outcome::Error(format!("reading the test data: {e}")),
            };
            return row;
        }
    };
    for data in &data_sets {
        let outcome = check_data_set(&model, data, &mut row);
        if !matches!(outcome, Outcome::Pass) {
            row.outcome = outcome;
            break;
        }
    }
    row
}

/// Imports `model`; the outer error is a panic's message, the inner one the importer's.
fn import(model: &OnnxModel) -> Result<Result<Module, String>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        import_model(model, &ImportOptions::default()).map_err(|e| e.to_string())
    }))
    .map_err(|p| panic_message(p.as_ref()))
}

/// Imports, runs and compares one data set: every variant that imports must compute the
/// expected outputs; the case is unsupported when none imports.
fn check_data_set(model: &OnnxModel, data: &DataSet, row: &mut Row) -> Outcome {
    let mut last_refusal = String::new();
    for variant in variants(model) {
        let changed = apply_variant(model, data, variant);
        let module = match import(&changed) {
            Ok(Ok(module)) => module,
            Ok(Err(message)) => {
                if message.trim().is_empty() {
                    return Outcome::Error(format!("[{variant}] import refused without a message"));
                }
                last_refusal = format!("[{variant}] {message}");
                row.attempts.push((variant, message));
                continue;
            }
            Err(panic) => return Outcome::Error(format!("[{variant}] import panicked: {panic}")),
        };
        if !row.imported.contains(&variant) {
            row.imported.push(variant);
        }
        if let Some(wrong) = run_and_compare(&module, &changed, data) {
            return wrong;
        }
    }
    if row.imported.is_empty() {
        Outcome::Unsupported(last_refusal)
    } else {
        Outcome::Pass
    }
}

/// Runs an imported module on a data set; `None` when every output is as expected.
fn run_and_compare(module: &Module, model: &OnnxModel, data: &DataSet) -> Option<Outcome> {
    let outputs = match catch_unwind(AssertUnwindSafe(|| run(module, model, data))) {
        Ok(Ok(outputs)) => outputs,
        Ok(Err(e)) => return Some(Outcome::Error(format!("run: {e}"))),
        Err(panic) => {
            return Some(Outcome::Error(format!(
                "run panicked: {}",
                panic_message(panic.as_ref())
            )))
        }
    };
    if outputs.len() != data.outputs.len() {
        return Some(Outcome::Error(format!(
            "{} outputs computed, {} expected",
            outputs.len(),
            data.outputs.len()
        )));
    }
    for (i, (actual, expected)) in outputs.iter().zip(&data.outputs).enumerate() {
        if let Some(diff) = compare(actual, expected) {
            return Some(Outcome::Mismatch(format!("output {i}: {diff}")));
        }
    }
    None
}

/// The table, totals and details of the report.
fn report(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ONNX backend node tests (float tolerance |a - b| <= {ATOL:e} + {RTOL:e} * |b|, integers exact)\n"
    );
    for row in rows {
        let _ = writeln!(out, "{:width$}  {}", row.name, row.result());
    }
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let passed = count(|o| matches!(o, Outcome::Pass));
    let retried = rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass) && !r.imported.contains(&AS_IS))
        .count();
    let _ = writeln!(
        out,
        "\npassed {passed} of {} ({retried} of them only with constant inputs or the opset pinned \
         to {MAX_OPSET}); {} mismatch, {} unsupported, {} error",
        rows.len(),
        count(|o| matches!(o, Outcome::Mismatch(_))),
        count(|o| matches!(o, Outcome::Unsupported(_))),
        count(|o| matches!(o, Outcome::Error(_))),
    );
    let _ = writeln!(
        out,
        "\n[variants] list the variants that imported (each computed the expected outputs);\n\
         import errors of the variants tried, by case:"
    );
    for row in rows.iter().filter(|r| !r.attempts.is_empty()) {
        let _ = writeln!(out, "{}:", row.name);
        for (variant, message) in &row.attempts {
            let _ = writeln!(out, "  [{variant}] {}", one_line(message));
        }
    }
    out
}

#[test]
fn onnx_node_tests() {
    let Some(dir) = test_data_dir() else { return };
    let names = manifest(&dir);
    assert!(
        !names.is_empty(),
        "{}: the manifest lists no tests",
        dir.display()
    );
    let rows: Vec<Row> = names.iter().map(|name| check_case(&dir, name)).collect();

    let text = report(&rows);
    println!("{text}");
    let out = output_dir();
    std::fs::create_dir_all(&out).expect("creating target/onnx-node-tests");
    std::fs::write(out.join("report.txt"), &text).expect("writing report.txt");

    let failures: Vec<String> = rows
        .iter()
        .filter(|r| r.is_failure())
        .map(|r| format!("{}: {}", r.name, r.result()))
        .collect();
    let passed = rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass))
        .count();
    assert!(
        failures.is_empty(),
        "{} node test(s) imported but computed wrong results or failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed >= PASS_FLOOR,
        "only {passed} node tests pass, fewer than the floor of {PASS_FLOOR}"
    );
}
