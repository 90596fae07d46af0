#!/usr/bin/env python3
"""Load a safetensors file written by nn.h's nn_save into the matching
PyTorch model, without the safetensors package.

    python3 import.py model.safetensors          # into the Fashion-MNIST MLP

load_state_dict_file(path) returns (state_dict, metadata) for any model;
model.load_state_dict(state) then checks every name and shape (strict).
nn.h writes float tensors as F32 and int64 buffers (BatchNorm's
num_batches_tracked) as I64, under PyTorch's state_dict names.
"""
import json
import struct
import sys

import numpy as np
import torch

NP_TYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4",
            "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
SIZES = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1}


def load_state_dict_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    state = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        shape, dtype = info["shape"], info["dtype"]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * SIZES[dtype] or end > len(body):
            raise ValueError("%s: tensor %r: bad data_offsets" % (path, name))
        raw = body[begin:end]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(bits.view(np.float32).copy())
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=NP_TYPES[dtype]).copy())
        state[name] = t.reshape(shape)
    return state, metadata


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
    from export import fashion_mlp
    path = sys.argv[1] if len(sys.argv) > 1 else "model.safetensors"
    state, meta = load_state_dict_file(path)
    model = fashion_mlp()
    model.load_state_dict(state)  # strict: every name and shape must match
    model.eval()
    print("loaded %s (%s): %d tensors" % (path, meta, len(state)))
