#!/usr/bin/env python3
"""Runs an ONNX image classifier with onnxruntime (CPU) on the first N images of a mite dataset
split and writes the logits as a float32 .npy array [N, classes].

usage: ort_logits.py MODEL.onnx IMAGES.npy N OUT.npy

Images are uint8 [N, C, H, W]; the input is (pixel - 127.5) / 127.5, as mite eval's default.
"""
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, images, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    pixels = np.load(images)[:n]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows = []
    for image in pixels:
        x = ((image.astype(np.float32) - 127.5) / 127.5)[None]
        rows.append(session.run(None, {name: x})[0].reshape(-1))
    np.save(out, np.stack(rows).astype(np.float32))


if __name__ == "__main__":
    main()
