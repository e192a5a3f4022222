"""PyTorch reference (CPU, or CUDA with --device cuda) for bench/train_throughput.rs: the same SENSE paper autoencoder, the
same batch sizes and step counts, one JSON line of images/s per size.

    python torch_reference.py [--sizes 28x28:128,50x50:128,160x224:32] [--steps 20]
                              [--warmup 3] [--ops] [--device cpu|cuda]

Architecture (as sense::nn ModelKind::Ae with filters 64, latent 256): 4 x Conv2d(3x3, stride 2,
padding 1) + ReLU, flatten, Linear to the latent; Linear back + ReLU, unflatten, 3 x
ConvTranspose2d(3x3, stride 2, padding 1, output_padding to the exact size) + ReLU and a linear
ConvTranspose2d output layer; MSE; Adam lr 5e-4, eps 1e-8.
"""

import argparse
import json
import os
import time

import torch
from torch import nn

FILTERS = 64
LATENT_DIM = 256
LEVELS = 4


def halved(size_px, levels):
    for _ in range(levels):
        size_px = (size_px + 1) // 2
    return size_px


class PaperAe(nn.Module):
    def __init__(self, height_px, width_px):
        super().__init__()
        hs = [halved(height_px, lvl) for lvl in range(LEVELS + 1)]
        ws = [halved(width_px, lvl) for lvl in range(LEVELS + 1)]
        self.bottleneck = (FILTERS, hs[LEVELS], ws[LEVELS])
        features = FILTERS * hs[LEVELS] * ws[LEVELS]
        self.encoder = nn.Sequential(
            *[
                layer
                for lvl in range(LEVELS)
                for layer in (
                    nn.Conv2d(1 if lvl == 0 else FILTERS, FILTERS, 3, stride=2, padding=1),
                    nn.ReLU(),
                )
            ]
        )
        self.latent = nn.Linear(features, LATENT_DIM)
        self.expand = nn.Linear(LATENT_DIM, features)
        decoder = []
        for lvl in range(LEVELS, 0, -1):
            out_padding = (hs[lvl - 1] + 1 - 2 * hs[lvl], ws[lvl - 1] + 1 - 2 * ws[lvl])
            c_out = 1 if lvl == 1 else FILTERS
            decoder.append(
                nn.ConvTranspose2d(
                    FILTERS, c_out, 3, stride=2, padding=1, output_padding=out_padding
                )
            )
            if lvl != 1:
                decoder.append(nn.ReLU())
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x):
        z = self.latent(self.encoder(x).flatten(1))
        h = torch.relu(self.expand(z)).reshape(x.shape[0], *self.bottleneck)
        return self.decoder(h)


def measure(batch, warmup, steps, step):
    """Wall-clock images/s and the cores busy meanwhile (process CPU time / wall time)."""
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batch * steps / wall, cpu / wall


def synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def mean_ms(reps, op):
    """ms per call over `reps` calls after one warm-up; on CUDA one synchronize at each end."""
    op()
    synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        op()
    synchronize()
    return (time.perf_counter() - start) * 1e3 / reps


def throughput(height_px, width_px, batch, warmup, steps, device):
    torch.manual_seed(42)
    model = PaperAe(height_px, width_px).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=5e-4, eps=1e-8)
    # Every phase ends in loss.item(), which waits for the GPU: the timing is of finished work.
    x = torch.randn(batch, 1, height_px, width_px).to(device)
    loss_fn = nn.MSELoss()

    def forward():
        with torch.no_grad():
            loss_fn(model(x), x).item()

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), x)
        loss.backward()
        loss.item()

    def step():
        optim.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), x)
        loss.backward()
        optim.step()
        loss.item()

    result = {}
    for name, phase in (("forward", forward), ("forward_backward", forward_backward), ("step", step)):
        rate, busy = measure(batch, warmup, steps, phase)
        result[f"{name}_img_per_sec"] = rate
        result[f"{name}_busy_cores"] = busy
    return result


def time_layer(reps, layer, x):
    """ms of forward alone, forward+backward to the weights, and to weights and input."""

    def fwd():
        with torch.no_grad():
            layer(x)

    def backward(input_grad):
        xi = x.detach().requires_grad_(input_grad)

        def run():
            layer.zero_grad(set_to_none=True)
            layer(xi).sum().backward()

        return mean_ms(reps, run)

    return mean_ms(reps, fwd), backward(False), backward(True)


def profile_ops(height_px, width_px, batch, reps, device):
    """Per-layer timing mirroring the Rust --ops table (inputs made outside the timing)."""
    hs = [halved(height_px, lvl) for lvl in range(LEVELS + 1)]
    ws = [halved(width_px, lvl) for lvl in range(LEVELS + 1)]
    print(f"  {'op (torch), ms':<28} {'fwd':>8} {'bwd weight':>11} {'bwd input':>11} {'total':>8}")
    total = [0.0, 0.0, 0.0]

    def report(name, times, input_grad):
        fwd, with_w, with_x = times
        row = [fwd, with_w - fwd, (with_x - with_w) if input_grad else 0.0]
        for i, v in enumerate(row):
            total[i] += v
        print(f"  {name:<28} {row[0]:>8.2f} {row[1]:>11.2f} {row[2]:>11.2f} {sum(row):>8.2f}")

    for lvl in range(LEVELS):
        c_in = 1 if lvl == 0 else FILTERS
        conv = nn.Conv2d(c_in, FILTERS, 3, stride=2, padding=1).to(device)
        x = torch.randn(batch, c_in, hs[lvl], ws[lvl], device=device)
        report(f"conv{lvl} {c_in}->{FILTERS} {hs[lvl]}x{ws[lvl]}", time_layer(reps, conv, x), lvl > 0)
    features = FILTERS * hs[LEVELS] * ws[LEVELS]
    for name, d_in, d_out in (
        ("dense encode", features, LATENT_DIM),
        ("dense decode", LATENT_DIM, features),
    ):
        x = torch.randn(batch, d_in, device=device)
        layer = nn.Linear(d_in, d_out).to(device)
        report(f"{name} {d_in}->{d_out}", time_layer(reps, layer, x), True)
    for lvl in range(LEVELS, 0, -1):
        c_out = 1 if lvl == 1 else FILTERS
        out_padding = (hs[lvl - 1] + 1 - 2 * hs[lvl], ws[lvl - 1] + 1 - 2 * ws[lvl])
        deconv = nn.ConvTranspose2d(
            FILTERS, c_out, 3, stride=2, padding=1, output_padding=out_padding
        ).to(device)
        x = torch.randn(batch, FILTERS, hs[lvl], ws[lvl], device=device)
        name = f"deconv{LEVELS - lvl} {FILTERS}->{c_out} {hs[lvl - 1]}x{ws[lvl - 1]}"
        report(name, time_layer(reps, deconv, x), True)
    print(f"  {'sum of layers':<28} {total[0]:>8.2f} {total[1]:>11.2f} {total[2]:>11.2f} {sum(total):>8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="28x28:128,50x50:128,160x224:32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--ops", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        # cuDNN picks the fastest algorithm per shape, as a tuned PyTorch user would.
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(args.threads)
    for spec in args.sizes.split(","):
        size, batch = spec.split(":")
        height_px, width_px = (int(v) for v in size.split("x"))
        batch = int(batch)
        result = throughput(height_px, width_px, batch, args.warmup, args.steps, device)
        print(
            json.dumps(
                {
                    "framework": f"torch-{torch.__version__}",
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "size": size,
                    "batch": batch,
                    "steps": args.steps,
                    "threads": torch.get_num_threads(),
                    **result,
                }
            ),
            flush=True,
        )
        if args.ops:
            profile_ops(height_px, width_px, batch, max(3, min(args.steps, 10)), device)


if __name__ == "__main__":
    main()
