#!/usr/bin/env python3
"""Writes a small float CNN in the form PyTorch's ONNX exporter gives (opset 17), written by hand
with the `onnx` package: Conv + BatchNormalization + Clip(0, 6) blocks, a residual Add, ReduceMean
over H and W, Flatten and a Gemm classifier named `classifier`. Seeded weights (numpy).

usage: small_cnn.py OUT.onnx [--qdq CALIB_IMAGES.npy OUT_QDQ.onnx]

With --qdq, onnxruntime's quant_pre_process and quantize_static also write the QDQ model (uint8 activations,
per-channel int8 weights) calibrated on the first 32 images of CALIB_IMAGES.npy
((pixel - 127.5) / 127.5, NCHW).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(8)
nodes, inits = [], []


def init(name, array):
    inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
    return name


def conv_bn_clip(name, x, c_in, c_out, k=3, stride=1, group=1, act=True):
    fan_in = c_in // group * k * k
    w = rng.normal(0, np.sqrt(2.0 / fan_in), (c_out, c_in // group, k, k))
    nodes.append(helper.make_node(
        "Conv", [x, init(f"{name}.weight", w)], [f"{name}.conv"], name=f"{name}.conv",
        kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=group))
    nodes.append(helper.make_node(
        "BatchNormalization",
        [f"{name}.conv", init(f"{name}.bn.weight", rng.uniform(0.5, 1.5, c_out)),
         init(f"{name}.bn.bias", rng.normal(0, 0.1, c_out)),
         init(f"{name}.bn.running_mean", rng.normal(0, 0.1, c_out)),
         init(f"{name}.bn.running_var", rng.uniform(0.5, 1.5, c_out))],
        [f"{name}.bn"], name=f"{name}.bn", epsilon=1e-5, momentum=0.9))
    if not act:
        return f"{name}.bn"
    nodes.append(helper.make_node(
        "Clip", [f"{name}.bn", init(f"{name}.min", 0.0), init(f"{name}.max", 6.0)],
        [f"{name}.act"], name=f"{name}.act"))
    return f"{name}.act"


def build():
    x = conv_bn_clip("stem", "input", 3, 16, stride=2)           # 16 x 16 x 16
    y = conv_bn_clip("block1.expand", x, 16, 32, k=1)
    y = conv_bn_clip("block1.dw", y, 32, 32, group=32)
    y = conv_bn_clip("block1.project", y, 32, 16, k=1, act=False)
    nodes.append(helper.make_node("Add", [x, y], ["block1.add"], name="block1.add"))
    z = conv_bn_clip("block2", "block1.add", 16, 32, stride=2)    # 32 x 8 x 8
    nodes.append(helper.make_node("ReduceMean", [z], ["pool"], name="pool", axes=[2, 3],
                                  keepdims=1))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1))
    w = rng.normal(0, np.sqrt(1.0 / 32), (10, 32))
    nodes.append(helper.make_node(
        "Gemm", ["flat", init("classifier.weight", w), init("classifier.bias", np.zeros(10))],
        ["logits"], name="classifier", alpha=1.0, beta=1.0, transB=1))
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="pytorch-style-by-hand")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def quantize(float_path, images, out):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            pixels = np.load(images)[:32].astype(np.float32)
            self.items = iter([{"input": ((p - 127.5) / 127.5)[None]} for p in pixels])

        def get_next(self):
            return next(self.items, None)

    # onnxruntime's recommended pre-processing (folds BatchNormalization into the convs)
    prepared = out + ".prepared.onnx"
    quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
    quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)


def main():
    out = sys.argv[1]
    onnx.save(build(), out)
    if len(sys.argv) == 5 and sys.argv[2] == "--qdq":
        quantize(out, sys.argv[3], sys.argv[4])
        import os
        os.remove(sys.argv[4] + ".prepared.onnx")


if __name__ == "__main__":
    main()
