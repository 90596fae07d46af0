"""The Fashion-MNIST MLP of bench/train_mlp.c in PyTorch: 784-256-128-10 ReLU,
batch 128, SGD lr 0.05 momentum 0.9, the dataset kept as uint8 and converted per
batch. Prints the median epoch time and the peak RSS.
Usage: python3 train_mlp.py [threads] [epochs]
Run it at its best: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive"""
import sys
import threads  # before torch: caps OpenBLAS's threads (the count is positional here)
threads.cap(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
import gzip, os, resource, struct, time
import numpy as np
import torch

def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    d = os.environ.get("NN_DATA", "/usr/share/datasets/fashion-mnist")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    xtr = torch.from_numpy(idx(d + "/train-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    ytr = torch.from_numpy(idx(d + "/train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.from_numpy(idx(d + "/t10k-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    yte = torch.from_numpy(idx(d + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    secs = []
    n = xtr.shape[0]
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for i in range(0, n, 128):
            idxs = perm[i:i + 128]
            x = xtr[idxs].float().mul_(1.0 / 255.0)
            loss = lossf(net(x), ytr[idxs])
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs.append(time.perf_counter() - t0)
    with torch.no_grad():
        acc = (net(xte.float() / 255.0).argmax(1) == yte).float().mean().item()
    secs.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("pytorch threads=%d epochs=%d median_epoch_s=%.3f peak_rss_mb=%.1f test_acc=%.4f"
          % (threads, epochs, secs[len(secs) // 2], rss, acc))

if __name__ == "__main__":
    main()
