"""Caps every thread pool of this process at the --threads count, before
torch is imported.  Import it first, before `import torch`:

    import threads  # noqa: F401  (first: caps OpenBLAS before torch loads it)

torch.set_num_threads(n) sizes PyTorch's own intra-op pool, but not
OpenBLAS's pthreads, which read OPENBLAS_NUM_THREADS once, when the library
loads: with torch.set_num_threads(1) alone, PyTorch's GEMMs still ran on both
cores (the MLP at batch 256: 4.39 us/image at cpu/wall 2.00, against 5.88 us
at cpu/wall 1.00 once capped), which flattered its 1-thread figures.

On import this reads `--threads N` (or `--threads=N`) from sys.argv and sets
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS to N (1 without
the option, the drivers' default); check(n) after parsing confirms it.  A script
whose thread count is positional calls cap(n) itself, still before torch.
child_env() gives the environment as it was before the caps, for the nn.h
programs these scripts start: nn.h takes its thread count from its argument
(nn_set_threads), and its environment stays what the caller gave.
"""
import os
import sys

VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ORIGINAL = {v: os.environ.get(v) for v in VARS}


def cap(n):
    """Sets the thread variables to n; must run before torch is imported."""
    if "torch" in sys.modules:
        raise RuntimeError("threads.cap() after torch was imported: OpenBLAS is already sized")
    for v in VARS:
        os.environ[v] = str(int(n))


def argv_threads(argv=None):
    """The N of `--threads N` / `--threads=N` in argv, or None."""
    argv = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return None


def child_env(env=None):
    """A copy of env (default os.environ) with the thread variables as they
    were before cap(): unset where the caller had them unset."""
    env = dict(os.environ if env is None else env)
    for v, val in _ORIGINAL.items():
        if val is None:
            env.pop(v, None)
        else:
            env[v] = val
    return env


def check(n):
    """Raises unless the caps are n (say --threads came abbreviated, which
    argparse accepts and argv_threads does not); call it after parsing."""
    got = os.environ.get("OPENBLAS_NUM_THREADS")
    if got != str(int(n)):
        raise SystemExit("threads.py: OPENBLAS_NUM_THREADS=%s but %d threads asked; "
                         "spell the option --threads N" % (got, n))


# Without --threads, the drivers' argparse default: 1.
cap(argv_threads() or 1)
