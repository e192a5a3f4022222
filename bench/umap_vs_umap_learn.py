"""UMAP quality and speed: umap-learn against `sense embed` on the same inputs.

Cases: MNIST test (10K × 784, pixels / 255) and a 30K × 256 latent-like matrix (PCA-256 of the
first 30K MNIST training images). For each: wall time, trustworthiness (k = 10), silhouette and
5-NN accuracy of the 2-D layout by digit, for both, and the speed ratio. Then the live warm
start: the 30K latents perturbed (Gaussian noise, 2% of the per-feature std), `sense embed
--init` from the cold layout, its wall time and the Procrustes drift to the cold layout.

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
    cmd = [*sense, "--latents", x_path, "--out", out_path, "--seed", str(seed), *extra]
    if init:
        cmd += ["--init", init]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(out_path), time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sense", required=True, help="command that takes `sense embed` arguments")
    ap.add_argument("--mnist", default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--trust-sample", type=int, default=5000)
    ap.add_argument("--noise", type=float, default=0.02, help="warm-start perturbation, × feature std")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sense = args.sense.split()
    directory, sep = find_mnist(args.mnist)

    test_x, test_y = mnist(directory, sep, "t10k")
    train_x, train_y = mnist(directory, sep, "train")
    latents = PCA(256, random_state=0).fit_transform(train_x[:30000]).astype(np.float32)
    cases = [("mnist-10k-784", test_x, test_y), ("latent-30k-256", latents, train_y[:30000])]

    # umap-learn's first call compiles its numba kernels (~1 min): warm it up untimed, as the
    # stack-facts comparison did, so its figures are of the algorithm, not the JIT.
    run_umap_learn(test_x[:2000], args.seed, n_epochs=10)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, x, labels in cases:
            x_path = os.path.join(tmp, f"{name}.npy")
            np.save(x_path, x)
            y_ref, t_ref = run_umap_learn(x, args.seed)
            y_rs, t_rs = run_sense(sense, x_path, os.path.join(tmp, f"{name}.layout.npy"), args.seed)
            for who, y, t in [("umap-learn", y_ref, t_ref), ("sense", y_rs, t_rs)]:
                trust, sil, knn = quality(x, y, labels, args.trust_sample)
                rows.append(dict(case=name, impl=who, wall_s=t, trustworthiness=trust, silhouette=sil, knn_accuracy=knn))
            rows[-1]["speedup"] = t_ref / t_rs

        # Live update: the latents of "the next epoch", warm-started from the cold layout.
        name, x, labels = cases[1]
        cold_path = os.path.join(tmp, f"{name}.layout.npy")
        rng = np.random.default_rng(1)
        x2 = (x + args.noise * x.std(axis=0) * rng.standard_normal(x.shape)).astype(np.float32)
        x2_path = os.path.join(tmp, f"{name}.next.npy")
        np.save(x2_path, x2)
        y_cold = np.load(cold_path)
        y_warm, t_warm = run_sense(sense, x2_path, os.path.join(tmp, "warm.npy"), args.seed, init=cold_path)
        _, _, drift = procrustes(y_cold, y_warm)
        trust, sil, knn = quality(x2, y_warm, labels, args.trust_sample)
        warm = dict(case=name + " warm", impl="sense --init", wall_s=t_warm, drift=drift,
                    trustworthiness=trust, silhouette=sil, knn_accuracy=knn)

    if args.json:
        print(json.dumps(dict(rows=rows, warm=warm)))
        return
    print(f"{'case':<16} {'impl':<12} {'wall s':>7} {'trust@10':>9} {'silhouette':>10} {'5-NN acc':>9} {'speedup':>8}")
    for r in rows:
        speed = f"{r['speedup']:.1f}x" if "speedup" in r else ""
        print(f"{r['case']:<16} {r['impl']:<12} {r['wall_s']:7.1f} {r['trustworthiness']:9.3f} "
              f"{r['silhouette']:10.3f} {r['knn_accuracy']:9.3f} {speed:>8}")
    print(f"warm start ({warm['case']}): {warm['wall_s']:.1f} s, Procrustes drift {warm['drift']:.4f}, "
          f"trust@10 {warm['trustworthiness']:.3f}, 5-NN acc {warm['knn_accuracy']:.3f}")


if __name__ == "__main__":
    main()
