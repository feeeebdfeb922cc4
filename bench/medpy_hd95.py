#!/usr/bin/env python3
"""Time MedPy 0.5.2's hd95 on the same 256x256 mask pairs as the Rust criterion bench.

The pairs are generated with integer arithmetic only, by the same formula as
crates/semisono-metrics/benches/hd95.rs, so both time identical inputs; both print the same
checksum line (foreground pixel total and the sum of HD95) to confirm it.

Usage: python3 bench/medpy_hd95.py [--repeats N]
Installs medpy, numpy and scipy with pip if they cannot be imported.
"""
import argparse
import subprocess
import sys
import time

try:
    import numpy as np
    from medpy.metric import binary
except ImportError:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "medpy", "numpy", "scipy"])
    import numpy as np
    from medpy.metric import binary

H = W = 256
N_PAIRS = 16


def ellipse(m, cy, cx, ay, ax):
    """Axis-aligned ellipse: (dy*ax)^2 + (dx*ay)^2 <= (ax*ay)^2, integers only."""
    r = np.arange(H, dtype=np.int64)[:, None]
    c = np.arange(W, dtype=np.int64)[None, :]
    dy, dx = r - cy, c - cx
    m |= (dy * ax) ** 2 + (dx * ay) ** 2 <= (ax * ay) ** 2


def rem(a, b):
    """Rust's % (truncated) for the non-negative operands used here."""
    assert a >= 0 and b > 0
    return a % b


def pair(i):
    cy = 128 + rem(i * 37, 41) - 20
    cx = 128 + rem(i * 53, 43) - 21
    ay = 30 + rem(i * 29, 60)
    ax = 25 + rem(i * 31, 70)
    reference = np.zeros((H, W), dtype=bool)
    ellipse(reference, cy, cx, ay, ax)
    result = np.zeros((H, W), dtype=bool)
    ellipse(result, cy + rem(i, 5) - 2, cx + rem(i, 7) - 3, ay + rem(i, 9) - 4, ax - rem(i, 6) + 2)
    if rem(i, 3) == 0:
        ellipse(result, 20 + rem(i * 7, 30), 230 - rem(i * 11, 40), 6, 6)
    return result, reference


def full_set(r, g):
    """Everything semisono's evaluator returns from one call (MedPy recomputes the EDTs per call)."""
    return (binary.hd(r, g), binary.hd95(r, g), binary.asd(r, g), binary.asd(g, r), binary.assd(r, g))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import medpy
    pairs = [pair(i) for i in range(N_PAIRS)]
    fg = sum(int(r.sum()) + int(g.sum()) for r, g in pairs)
    s = sum(binary.hd95(r, g) for r, g in pairs)
    print(f"checksum: pairs={N_PAIRS} foreground_total={fg} sum_hd95={s:.6f}")
    print(f"medpy {getattr(medpy, '__version__', '?')}, numpy {np.__version__}")
    for name, fn in [("medpy.metric.binary.hd95", binary.hd95), ("medpy full set (hd, hd95, asd x2, assd)", full_set)]:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for r, g in pairs:
                fn(r, g)
            times.append((time.perf_counter() - t0) / N_PAIRS)
        mean = sum(times) / len(times)
        print(f"{name}: mean {mean * 1e3:.3f} ms per pair (min {min(times) * 1e3:.3f}; "
              f"{args.repeats} runs over {N_PAIRS} pairs)")


if __name__ == "__main__":
    main()
