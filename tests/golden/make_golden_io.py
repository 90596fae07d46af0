#!/usr/bin/env python3
"""Golden model files for tests/test_io.c, written by PyTorch:

  mlp.safetensors       Linear(6,8) ReLU Linear(8,3) state_dict
  mlp_io.safetensors    "input" [4,6] and PyTorch's "output" [4,3]
  cnn_bn.safetensors    Conv2d(1,3,3,padding=1) BatchNorm2d(3) ReLU MaxPool2d(2)
                        Flatten Linear(3*4*4,5), BN's running statistics moved by
                        three training batches (num_batches_tracked = 3, I64)
  cnn_bn_io.safetensors "input" [2,1,8,8] and the eval-mode "output" [2,5]

Run from the repository root:  python3 tests/golden/make_golden_io.py
The writer is examples/pytorch/export.py (no safetensors package needed). """
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "examples", "pytorch"))
from export import save_state_dict  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden")
torch.manual_seed(1234)

mlp = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
x = torch.randn(4, 6)
with torch.no_grad():
    y = mlp(x)
save_state_dict(mlp.state_dict(), os.path.join(OUT, "mlp.safetensors"))
save_state_dict({"input": x, "output": y}, os.path.join(OUT, "mlp_io.safetensors"))

cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3),
                          torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                          torch.nn.Linear(3 * 4 * 4, 5))
with torch.no_grad():
    cnn[1].weight.uniform_(0.5, 1.5)
    cnn[1].bias.uniform_(-0.5, 0.5)
    cnn.train()
    for _ in range(3):
        cnn(torch.randn(8, 1, 8, 8) * 2 + 0.5)
    cnn.eval()
    x = torch.randn(2, 1, 8, 8)
    y = cnn(x)
state = cnn.state_dict()
assert state["1.num_batches_tracked"].dtype == torch.int64
save_state_dict(state, os.path.join(OUT, "cnn_bn.safetensors"), {"made_by": "make_golden_io.py"})
save_state_dict({"input": x, "output": y}, os.path.join(OUT, "cnn_bn_io.safetensors"))
print("wrote", OUT)
