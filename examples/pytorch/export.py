#!/usr/bin/env python3
"""Write a PyTorch model's state_dict as a safetensors file that nn.h's
nn_load reads -- without the safetensors package: the format is an 8-byte
little-endian header length, a JSON header, then the raw little-endian
tensors (https://github.com/huggingface/safetensors).

    python3 export.py model.safetensors          # the Fashion-MNIST MLP

In C:  nn_module *net = nn_sequential(nn_linear(784, 256), nn_relu(),
           nn_linear(256, 128), nn_relu(), nn_linear(128, 10), NULL);
       nn_load_opts lo = {0};
       nn_load(net, "model.safetensors", lo);

Use save_state_dict(model.state_dict(), path) for any model whose layers
nn.h has (Linear, Conv1d/2d, ConvTranspose2d, BatchNorm1d/2d, containers).
"""
import json
import struct
import sys

import torch

DTYPES = {
    torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"),
    torch.float16: ("F16", "<f2"), torch.int64: ("I64", "<i8"),
    torch.int32: ("I32", "<i4"), torch.int16: ("I16", "<i2"),
    torch.int8: ("I8", "i1"), torch.uint8: ("U8", "u1"), torch.bool: ("BOOL", "u1"),
}


def save_state_dict(state, path, metadata=None):
    """state: name -> tensor (model.state_dict()); metadata: str -> str."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: take the top half of F32
            raw = (t.float().view(torch.int32) >> 16).to(torch.int16).numpy().astype("<i2").tobytes()
            dtype = "BF16"
        else:
            dtype, np_type = DTYPES[t.dtype]
            raw = t.numpy().astype(np_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    meta = {"format": "pt"}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def fashion_mlp():
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "model.safetensors"
    torch.manual_seed(0)
    save_state_dict(fashion_mlp().state_dict(), out, {"written_by": "export.py"})
    print("wrote", out)
