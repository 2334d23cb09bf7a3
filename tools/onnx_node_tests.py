#!/usr/bin/env python3
"""Write the ONNX backend node tests of the operators mite imports into a directory.

Usage: python3 tools/onnx_node_tests.py OUT_DIR

Needs the `onnx` and `numpy` packages from PyPI. For every node test of the `onnx` package
(`onnx.backend.test.loader.load_model_tests(kind="node")`) whose graph uses one of the operators
in OPS, it writes the files the onnx repository ships for it:

    OUT_DIR/<test name>/model.onnx
    OUT_DIR/<test name>/test_data_set_<i>/input_<j>.pb    (serialized TensorProto)
    OUT_DIR/<test name>/test_data_set_<i>/output_<j>.pb

and OUT_DIR/manifest.txt, one test name per line (comment lines start with `#`).

Every variant of those operators is written, including the ones mite does not support. The
`*_expanded*` tests are left out: they replace the operator by its function body, a graph of
other operators (ReduceMax, Exp, Where, ...), so they test those operators instead.

Recent onnx releases build the node tests in memory (`model_dir` is None); older ones point at
the shipped files (`model_dir`), which are then copied. Running the script again rewrites the
same files and removes test directories that are no longer selected.
"""

import os
import shutil
import sys
import warnings

import onnx
from onnx import numpy_helper
from onnx.backend.test.loader import load_model_tests

# The ONNX operators mite's importer converts (frontends/onnx/src/import/convert.rs).
OPS = {
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "BatchNormalization",
    "AveragePool",
    "GlobalAveragePool",
    "MaxPool",
    "Concat",
    "Flatten",
    "Reshape",
    "Transpose",
    "Pad",
    "Softmax",
    "LogSoftmax",
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
}

MANIFEST = "manifest.txt"


def selected(case):
    """Whether the test case exercises one of OPS directly."""
    if "_expanded" in case.name:
        return False
    graph = model_of(case).graph
    return any(node.op_type in OPS for node in graph.node)


def model_of(case):
    """The case's ModelProto, built in memory or read from the shipped directory."""
    if case.model is not None:
        return case.model
    return onnx.load(os.path.join(case.model_dir, "model.onnx"))


def tensor_bytes(value, name):
    """A data set value as the bytes of a serialized TensorProto named `name`."""
    if isinstance(value, onnx.TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, name).SerializeToString()


def write_case(case, case_dir):
    """Writes model.onnx and the test_data_set_* directories of one case into case_dir."""
    if os.path.exists(case_dir):
        shutil.rmtree(case_dir)
    if case.model_dir is not None:
        shutil.copytree(case.model_dir, case_dir)
        return
    os.makedirs(case_dir)
    graph = case.model.graph
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    for i, (inputs, outputs) in enumerate(case.data_sets):
        data_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(data_dir)
        for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            for j, value in enumerate(values):
                if not infos[j].type.HasField("tensor_type"):
                    raise ValueError(f"{kind} {j} of {case.name} is not a tensor")
                with open(os.path.join(data_dir, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(tensor_bytes(value, infos[j].name))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)

    with warnings.catch_warnings():
        # Building some unrelated tests (Cast, ReduceLogSum, ...) warns about overflow.
        warnings.simplefilter("ignore", RuntimeWarning)
        all_cases = load_model_tests(kind="node")
    cases = sorted((c for c in all_cases if selected(c)), key=lambda c: c.name)
    names = [c.name for c in cases]
    for case in cases:
        write_case(case, os.path.join(out_dir, case.name))

    # Remove the directories of tests no longer selected (e.g. after an onnx upgrade).
    for entry in os.listdir(out_dir):
        path = os.path.join(out_dir, entry)
        if entry.startswith("test_") and os.path.isdir(path) and entry not in names:
            shutil.rmtree(path)

    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        f.write(f"# ONNX backend node tests of the operators mite imports (onnx {onnx.__version__})\n")
        f.write(f"# written by tools/onnx_node_tests.py: {len(names)} tests\n")
        for name in names:
            f.write(name + "\n")
    print(f"wrote {len(names)} node tests to {out_dir}")


if __name__ == "__main__":
    main()
