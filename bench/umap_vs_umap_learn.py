"""UMAP quality and speed: umap-learn against `sense embed` on the same inputs.

Cases: MNIST test (10K × 784, pixels / 255) and a 30K × 256 latent-like matrix (PCA-256 of the
first 30K MNIST training images). For each seed (0–2 by default) and each implementation
(umap-learn seeded, so single-threaded; `sense embed`, deterministic, so its optimiser runs on
one thread; `sense embed --parallel`, Hogwild on every core): wall time, trustworthiness
(k = 10), silhouette and 5-NN accuracy of the 2-D layout by digit; then mean ± half-range over
the seeds and the speed ratio to umap-learn. Then the live warm start: the 30K latents
perturbed (Gaussian noise, 2% of the per-feature std), `sense embed --init --parallel` from
each seed's cold layout (and its kNN graph, `*.knn.npy`), its wall time and the Procrustes
drift to the cold layout.

Run through bench/umap_vs_umap_learn.sh (it installs the venv and builds `sense`).
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.spatial import procrustes
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.metrics import silhouette_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_mnist(explicit):
    for d in [explicit, "../shared/datasets/mnist", "sample_data/mnist"]:
        if d and os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")):
            return d, "-"
        if d and os.path.exists(os.path.join(d, "train-images.idx3-ubyte.gz")):
            return d, "."
    sys.exit("MNIST (gzip IDX, train + t10k) not found; pass --mnist DIR")


def mnist(directory, sep, split):
    images = read_idx(os.path.join(directory, f"{split}-images{sep}idx3-ubyte.gz"))
    labels = read_idx(os.path.join(directory, f"{split}-labels{sep}idx1-ubyte.gz"))
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels.astype(int)


def quality(x, y, labels, sample, seed=0):
    """Trustworthiness on a fixed subsample (it is O(N²)), silhouette and 5-NN accuracy."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    trust = trustworthiness(x[idx], y[idx], n_neighbors=10)
    sil = silhouette_score(y[idx], labels[idx])
    knn = cross_val_score(KNeighborsClassifier(5), y, labels, cv=5).mean()
    return trust, sil, knn


def run_umap_learn(x, seed, n_epochs=None):
    import umap

    start = time.perf_counter()
    y = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_epochs=n_epochs).fit_transform(x)
    return y.astype(np.float32), time.perf_counter() - start


def run_sense(sense, x_path, out_path, seed, init=None, extra=()):
    cmd = [*sense, "--latents", x_path, "--out", out_path, "--seed", str(seed), "--force", "--quiet", *extra]
    if init:
        cmd += ["--init", init]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(out_path), time.perf_counter() - start


def summary(values):
    """Mean and half the range (the spread reported in the table)."""
    values = np.asarray(values, dtype=float)
    return values.mean(), (values.max() - values.min()) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sense", required=True, help="command that takes `sense embed` arguments")
    ap.add_argument("--mnist", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--trust-sample", type=int, default=5000)
    ap.add_argument("--noise", type=float, default=0.02, help="warm-start perturbation, × feature std")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sense = args.sense.split()
    seeds = [int(s) for s in args.seeds.split(",")]
    directory, sep = find_mnist(args.mnist)

    test_x, test_y = mnist(directory, sep, "t10k")
    train_x, train_y = mnist(directory, sep, "train")
    latents = PCA(256, random_state=0).fit_transform(train_x[:30000]).astype(np.float32)
    cases = [("mnist-10k-784", test_x, test_y), ("latent-30k-256", latents, train_y[:30000])]

    # umap-learn compiles its numba kernels on first use (NN-descent only runs above 4,096
    # rows): one untimed full-size-path fit per input width, so its figures are of the
    # algorithm, not the JIT.
    for _, x, _ in cases:
        run_umap_learn(x[:5000], seeds[0])

    impls = [("umap-learn", None), ("sense", ()), ("sense --parallel", ("--parallel",))]
    runs = []  # (case, impl, seed, wall, trust, silhouette, knn)
    warm = []  # (seed, wall, drift, trust, silhouette, knn)
    with tempfile.TemporaryDirectory() as tmp:
        for name, x, labels in cases:
            x_path = os.path.join(tmp, f"{name}.npy")
            np.save(x_path, x)
            for seed in seeds:
                for impl, extra in impls:
                    if extra is None:
                        y, t = run_umap_learn(x, seed)
                    else:
                        out = os.path.join(tmp, f"{name}.{seed}.{len(extra)}.layout.npy")
                        y, t = run_sense(sense, x_path, out, seed, extra=extra)
                    trust, sil, knn = quality(x, y, labels, args.trust_sample)
                    runs.append((name, impl, seed, t, trust, sil, knn))
                    print(f"{name} {impl} seed {seed}: {t:.2f} s, trust {trust:.4f}, "
                          f"silhouette {sil:.4f}, 5-NN {knn:.4f}", file=sys.stderr, flush=True)

        # The live update: the latents of "the next epoch", warm-started from the cold
        # (parallel, as the app) layout and its kNN graph.
        name, x, labels = cases[1]
        rng = np.random.default_rng(1)
        x2 = (x + args.noise * x.std(axis=0) * rng.standard_normal(x.shape)).astype(np.float32)
        x2_path = os.path.join(tmp, f"{name}.next.npy")
        np.save(x2_path, x2)
        for seed in seeds:
            cold_path = os.path.join(tmp, f"{name}.{seed}.1.layout.npy")
            y_cold = np.load(cold_path)
            y_warm, t_warm = run_sense(sense, x2_path, os.path.join(tmp, "warm.npy"), seed,
                                       init=cold_path, extra=("--parallel",))
            _, _, drift = procrustes(y_cold, y_warm)
            trust, sil, knn = quality(x2, y_warm, labels, args.trust_sample)
            warm.append((seed, t_warm, drift, trust, sil, knn))

    if args.json:
        print(json.dumps(dict(runs=runs, warm=warm)))
        return
    print(f"seeds {seeds}; mean ± half-range")
    print("| case | impl | wall s | speed-up | trust@10 | silhouette | 5-NN acc |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in cases:
        ref_wall = summary([r[3] for r in runs if r[0] == name and r[1] == "umap-learn"])[0]
        for impl, _ in impls:
            rows = [r for r in runs if r[0] == name and r[1] == impl]
            wall, trust, sil, knn = (summary([r[i] for r in rows]) for i in (3, 4, 5, 6))
            speed = "" if impl == "umap-learn" else f"{ref_wall / wall[0]:.1f}×"
            print(f"| {name} | {impl} | {wall[0]:.2f} ± {wall[1]:.2f} | {speed} | "
                  f"{trust[0]:.4f} ± {trust[1]:.4f} | {sil[0]:.4f} ± {sil[1]:.4f} | "
                  f"{knn[0]:.4f} ± {knn[1]:.4f} |")
    wall, drift, trust, sil, knn = (summary([w[i] for w in warm]) for i in (1, 2, 3, 4, 5))
    print(f"| {cases[1][0]} warm (--init, --parallel) | sense | {wall[0]:.2f} ± {wall[1]:.2f} | "
          f"drift {drift[0]:.4f} ± {drift[1]:.4f} | {trust[0]:.4f} ± {trust[1]:.4f} | "
          f"{sil[0]:.4f} ± {sil[1]:.4f} | {knn[0]:.4f} ± {knn[1]:.4f} |")


if __name__ == "__main__":
    main()
