#!/usr/bin/python3
"""Golden data for nn.h's sequence layers (tests/test_seq.c), made by PyTorch
1.13.  Run from anywhere with a Python that has torch:

    /usr/bin/python3 tests/golden/make_golden_seq.py

It writes seq.txt (the tests/golden.h format: magic "nn.h-golden 1", then
whitespace-separated tokens; a tensor is "t <ndim> <dims...> <values...>")
and lstm_seq.safetensors (a 2-layer bidirectional LSTM's state_dict, written
by examples/pytorch/export.py).  Every differentiable case gives the loss
sum(y * wy) [+ sum(h_n * wh) [+ sum(c_n * wc)]] with fixed random w, and the
gradients of that loss.  Records:

  emb <num> <dim> <use_pad> <pad> <max_norm> <nidx_dims> <dims..> <idx..>
      weight out wy dweight weight_after
  isel <axis> <n> <idx..>  a out wy da
  gather <axis> <ndim> <dims..> <idx..>  a out wy da
  rnn <name> <kind 0 rnn|1 lstm|2 gru> <I> <H> <L> <bidir> <batch_first>
      <bias> <relu> <T> <B> <has_h0> <has_c0> <has_len> [<len>*B]
      <nparams> (<pname> <tensor>)*  x [h0] [c0]  y hn [cn]  wy wh [wc]
      dx [dh0] [dc0]  <dparam>*nparams
  cell <name> <kind> <I> <H> <B> <bias> <relu> <nparams> (<pname> <tensor>)*
      x h [c]  h' [c']  wy [wc]  dx dh [dc]  <dparam>*
  causal <stride> <dilation>  x w b  y wy  dx dw db
  lstmio  x y     (the input and output of lstm_seq.safetensors' model)
  end
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples", "pytorch"))
from export import save_state_dict  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(13)
out = ["nn.h-golden 1"]


def rnd(*shape, scale=1.0):
    return ((torch.randn(*shape) * scale * 1e4).round() / 1e4).double()


def wt(t):
    t = t.detach().double()
    vals = " ".join("%.9g" % v for v in t.reshape(-1).tolist())
    return "t %d %s %s" % (t.dim(), " ".join(str(d) for d in t.shape), vals)


def ints(v):
    return " ".join(str(int(i)) for i in v)


# ---- embedding ----
def emb_case(num, dim, idx, pad, max_norm):
    w = rnd(num, dim, scale=1.5)
    w0 = w.clone()
    w.requires_grad_(True)
    y = F.embedding(idx, w, padding_idx=pad, max_norm=max_norm)
    wy = rnd(*y.shape)
    (y * wy).sum().backward()
    out.append("emb %d %d %d %d %.9g %d %s %s" % (num, dim, pad is not None, pad if pad is not None else 0,
                                                max_norm or 0.0, idx.dim(), ints(idx.shape),
                                                ints(idx.reshape(-1))))
    out.extend([wt(w0), wt(y), wt(wy), wt(w.grad), wt(w)])


emb_case(7, 5, torch.tensor([[1, 3, 3], [0, 6, 1]]), 1, None)
emb_case(7, 5, torch.tensor([2, 2, 5, 0]), None, None)
emb_case(6, 4, torch.tensor([[[4, 0]], [[4, 5]]]), -2, None)
emb_case(6, 4, torch.tensor([1, 3, 1]), None, 1.0)

# ---- index_select / gather ----
a = rnd(3, 4, 5).requires_grad_(True)
idx = torch.tensor([3, 0, 3, 1, 2])
y = torch.index_select(a, 1, idx)
wy = rnd(*y.shape)
(y * wy).sum().backward()
out.append("isel 1 %d %s" % (len(idx), ints(idx)))
out.extend([wt(a), wt(y), wt(wy), wt(a.grad)])

a = rnd(3, 4, 5).requires_grad_(True)
idx = torch.randint(0, 4, (2, 6, 3))
y = torch.gather(a, 1, idx)
wy = rnd(*y.shape)
(y * wy).sum().backward()
out.append("gather 1 3 %s %s" % (ints(idx.shape), ints(idx.reshape(-1))))
out.extend([wt(a), wt(y), wt(wy), wt(a.grad)])


# ---- recurrent layers ----
def rnn_case(name, kind, I, H, L, bidir, bf, bias, relu, T, B, has_h0, has_c0, lengths):
    D = 2 if bidir else 1
    if kind == 0:
        m = torch.nn.RNN(I, H, L, nonlinearity="relu" if relu else "tanh", bias=bias,
                         batch_first=bf, bidirectional=bidir)
    elif kind == 1:
        m = torch.nn.LSTM(I, H, L, bias=bias, batch_first=bf, bidirectional=bidir)
    else:
        m = torch.nn.GRU(I, H, L, bias=bias, batch_first=bf, bidirectional=bidir)
    m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(rnd(*p.shape, scale=0.4))
    x = rnd(*((B, T, I) if bf else (T, B, I))).requires_grad_(True)
    h0 = rnd(L * D, B, H).requires_grad_(True) if has_h0 else None
    c0 = rnd(L * D, B, H).requires_grad_(True) if has_c0 else None
    if kind == 1:
        st = None if h0 is None and c0 is None else (
            h0 if h0 is not None else torch.zeros(L * D, B, H, dtype=torch.double),
            c0 if c0 is not None else torch.zeros(L * D, B, H, dtype=torch.double))
    else:
        st = h0
    inp = x
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=bf,
                                                      enforce_sorted=False)
    res = m(inp, st)
    y, hs = res
    if lengths is not None:
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=bf, total_length=T)
    hn, cn = (hs if kind == 1 else (hs, None))
    wy, wh = rnd(*y.shape), rnd(*hn.shape)
    loss = (y * wy).sum() + (hn * wh).sum()
    wc = None
    if cn is not None:
        wc = rnd(*cn.shape)
        loss = loss + (cn * wc).sum()
    loss.backward()
    params = list(m.named_parameters())
    out.append("rnn %s %d %d %d %d %d %d %d %d %d %d %d %d %d %s" % (
        name, kind, I, H, L, int(bidir), int(bf), int(bias), int(relu), T, B, int(has_h0),
        int(has_c0), int(lengths is not None), ints(lengths) if lengths is not None else ""))
    out.append("%d" % len(params))
    for n, p in params:
        out.append("%s %s" % (n, wt(p)))
    out.append(wt(x))
    if has_h0:
        out.append(wt(h0))
    if has_c0:
        out.append(wt(c0))
    out.extend([wt(y), wt(hn)])
    if cn is not None:
        out.append(wt(cn))
    out.extend([wt(wy), wt(wh)])
    if wc is not None:
        out.append(wt(wc))
    out.append(wt(x.grad))
    if has_h0:
        out.append(wt(h0.grad))
    if has_c0:
        out.append(wt(c0.grad))
    for n, p in params:
        out.append(wt(p.grad))


rnn_case("lstm1", 1, 3, 4, 1, False, False, True, False, 5, 2, False, False, None)
rnn_case("lstm2_bi_bf_states", 1, 3, 4, 2, True, True, True, False, 4, 3, True, True, None)
rnn_case("lstm2_bi_len", 1, 3, 4, 2, True, False, True, False, 5, 3, True, True, [5, 2, 3])
rnn_case("lstm_nobias_bf_len", 1, 2, 3, 1, False, True, False, False, 4, 2, False, True, [2, 4])
rnn_case("gru1", 2, 3, 4, 1, False, True, True, False, 5, 2, True, False, None)
rnn_case("gru2_bi", 2, 3, 4, 2, True, False, True, False, 4, 2, True, False, None)
rnn_case("gru2_bi_bf_len", 2, 2, 3, 2, True, True, True, False, 5, 3, False, False, [1, 5, 3])
rnn_case("rnn_tanh_bi", 0, 3, 4, 1, True, False, True, False, 5, 2, True, False, None)
rnn_case("rnn_relu2_bf", 0, 3, 4, 2, False, True, True, True, 4, 3, True, False, None)
rnn_case("rnn_tanh_len", 0, 2, 5, 2, True, False, False, False, 4, 3, False, False, [4, 1, 2])


# ---- cells ----
def cell_case(name, kind, I, H, B, bias, relu):
    if kind == 0:
        m = torch.nn.RNNCell(I, H, bias=bias, nonlinearity="relu" if relu else "tanh")
    elif kind == 1:
        m = torch.nn.LSTMCell(I, H, bias=bias)
    else:
        m = torch.nn.GRUCell(I, H, bias=bias)
    m = m.double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(rnd(*p.shape, scale=0.5))
    x = rnd(B, I).requires_grad_(True)
    h = rnd(B, H).requires_grad_(True)
    c = rnd(B, H).requires_grad_(True) if kind == 1 else None
    if kind == 1:
        y, cy = m(x, (h, c))
    else:
        y, cy = m(x, h), None
    wy = rnd(*y.shape)
    loss = (y * wy).sum()
    if cy is not None:
        wc = rnd(*cy.shape)
        loss = loss + (cy * wc).sum()
    loss.backward()
    params = list(m.named_parameters())
    out.append("cell %s %d %d %d %d %d %d %d" % (name, kind, I, H, B, int(bias), int(relu), len(params)))
    for n, p in params:
        out.append("%s %s" % (n, wt(p)))
    out.extend([wt(x), wt(h)] + ([wt(c)] if c is not None else []))
    out.append(wt(y))
    if cy is not None:
        out.append(wt(cy))
    out.append(wt(wy))
    if cy is not None:
        out.append(wt(wc))
    out.extend([wt(x.grad), wt(h.grad)] + ([wt(c.grad)] if c is not None else []))
    for n, p in params:
        out.append(wt(p.grad))


cell_case("rnncell", 0, 3, 4, 2, True, False)
cell_case("rnncell_relu", 0, 3, 4, 2, False, True)
cell_case("lstmcell", 1, 3, 5, 2, True, False)
cell_case("grucell", 2, 3, 5, 3, True, False)


# ---- causal dilated conv1d ----
def causal_case(stride, dil):
    x = rnd(2, 3, 10).requires_grad_(True)
    w = rnd(4, 3, 3, scale=0.5).requires_grad_(True)
    b = rnd(4).requires_grad_(True)
    y = F.conv1d(F.pad(x, ((3 - 1) * dil, 0)), w, b, stride=stride, dilation=dil)
    wy = rnd(*y.shape)
    (y * wy).sum().backward()
    out.append("causal %d %d" % (stride, dil))
    out.extend([wt(x), wt(w), wt(b), wt(y), wt(wy), wt(x.grad), wt(w.grad), wt(b.grad)])


causal_case(1, 2)
causal_case(2, 3)
causal_case(1, 1)

# ---- an LSTM state_dict as safetensors, and its input/output ----
torch.manual_seed(5)
lstm = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
x = torch.randn(3, 7, 4)
with torch.no_grad():
    y, _ = lstm(x)
save_state_dict(lstm.state_dict(), os.path.join(HERE, "lstm_seq.safetensors"),
                {"made_by": "make_golden_seq.py"})
out.append("lstmio")
out.extend([wt(x), wt(y)])
out.append("end")
with open(os.path.join(HERE, "seq.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote", os.path.join(HERE, "seq.txt"))
