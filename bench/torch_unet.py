#!/usr/bin/env python3
"""Issue 5's reference network in PyTorch (CPU, fp32) next to `semisono bench --unet`, with the
ratios Rust / PyTorch printed in the same run.

The network and the three cases are the Rust bench's (crates/semisono-train/src/bench/unet.rs):

* U-Net on a ResNet-18 encoder: torchvision's resnet18 stem and layer1-3, the U-Net decoder of
  spec section 2.1 (CB blocks, bilinear x2 up-sampling with align_corners, skip concatenations),
  a 1x1 head, 2 classes; built by `torch_hermes.build_modules()` (SegNet, heads off).
* **train**: train-mode forward, pixel cross-entropy against one random elliptical mask per
  image, backward, Adam (lr 1e-3), loss read back.
* **infer**: eval-mode forward, softmax, probabilities read back.
* **saliency**: eval-mode ResNet-18 classifier (ClsNet, heads off); gradient of the sum of each
  image's top logit with respect to the input, reduced by max |.| over channels, read back.

Batch 8 x 3 x 128 x 128 of uniform noise; 2 warm-up and 10 measured repetitions; the median is
the figure. Each case runs in a child process of its own, so its peak memory (VmHWM) is its own.

    python3 bench/torch_unet.py --threads 2 --semisono target/release/semisono

installs torch and torchvision into bench/.venv-torch (pip, from PyPI) on first use when this
Python has no torch, runs each case as a pair, Rust (`semisono bench --child unet:CASE`, the same
sizes) then PyTorch, and prints both and the ratios. `--rust-json FILE` reads an earlier `semisono
bench --unet --json FILE` instead of running the binary.

`--rounds R` runs the pairs R times over and prints each pair's ratio and their median: on a
shared VM whose speed drifts by tens of percent within minutes, the ratio of two back-to-back
runs is steadier than either time.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULT_TAG = "TORCH_UNET_CASE "
CASES = ["train", "infer", "saliency"]
VENV = os.environ.get("SEMISONO_TORCH_VENV", os.path.join(HERE, ".venv-torch"))


def ensure_torch():
    """Re-runs this script in a venv with torch when this Python has none."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(py):
        sys.exit(f"torch is still missing in {VENV}; remove it and rerun")
    if not os.path.exists(py):
        print(f"torch_unet: installing torch and torchvision into {VENV} (pip)", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "torch", "torchvision"])
    os.execv(py, [py] + sys.argv)


sys.path.insert(0, HERE)


def run_child(args, case):
    import torch
    import torch.nn.functional as F
    from torch_hermes import build_modules, ellipse_masks, mib, status_kib

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base_kib = status_kib("VmRSS")
    SegNet, ClsNet = build_modules()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen)
    if case == "train":
        net = SegNet("resnet18", 1.0, 3).train()
        target = ellipse_masks(torch, gen, args.batch, args.size).long()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def rep():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x, heads=False), target)
            loss.backward()
            opt.step()
            loss.item()
    elif case == "infer":
        net = SegNet("resnet18", 1.0, 3).eval()

        def rep():
            with torch.inference_mode():
                torch.softmax(net(x, heads=False), 1).numpy()
    else:
        net = ClsNet("resnet18", 1.0, 3).eval()

        def rep():
            xi = x.detach().clone().requires_grad_(True)
            net(xi, heads=False).max(1).values.sum().backward()
            xi.grad.abs().amax(1).numpy()

    warm, meas, cpu_meas = [], [], 0.0
    for i in range(args.warmup + args.reps):
        cpu, start = time.process_time(), time.perf_counter()
        rep()
        secs = time.perf_counter() - start
        if i < args.warmup:
            warm.append(secs)
        else:
            meas.append(secs)
            cpu_meas += time.process_time() - cpu
        what, k, n = (("warm-up", i + 1, args.warmup) if i < args.warmup
                      else ("measured", i + 1 - args.warmup, args.reps))
        print(f"  torch unet:{case} {what} {k}/{n}: {secs * 1e3:.1f} ms", file=sys.stderr)
    result = dict(
        case=case, framework=f"torch {torch.__version__}", batch=args.batch, size=args.size,
        threads=torch.get_num_threads(), warmup_s=warm, measured_s=meas,
        median_s=sorted(meas)[len(meas) // 2], mean_s=sum(meas) / len(meas), min_s=min(meas),
        cores_used=cpu_meas / sum(meas), base_rss_mib=mib(base_kib),
        peak_rss_mib=mib(status_kib("VmHWM")),
    )
    print(RESULT_TAG + json.dumps(result), flush=True)


def child_results(args, cases=CASES):
    out = []
    for case in cases:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", case,
               "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--reps", str(args.reps), "--batch", str(args.batch), "--size", str(args.size)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        line = next(l for l in proc.stdout.splitlines() if l.startswith(RESULT_TAG))
        out.append(json.loads(line[len(RESULT_TAG):]))
    return out


def rust_case(args, case):
    """One Rust case in a child process of the binary (`semisono bench --child unet:CASE`)."""
    cmd = [args.semisono, "bench", "--child", f"unet:{case}", "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--unet-reps", str(args.reps),
           "--ops-batch", str(args.batch), "--ops-size", str(args.size)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    tag = "SEMISONO_BENCH_CASE "
    line = next(l for l in proc.stdout.splitlines() if l.startswith(tag))
    return json.loads(line[len(tag):])


def saved_rust_cases(args):
    """The cases of an earlier `semisono bench --unet --json FILE` (`--rust-json`), or None."""
    if not args.rust_json:
        return None
    with open(args.rust_json) as f:
        return json.load(f)["cases"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    ap.add_argument("--reps", type=int, default=10, help="measured repetitions")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--semisono", default=None, help="semisono binary to run for the Rust side")
    ap.add_argument("--rust-json", default=None, help="an earlier `semisono bench --unet --json`")
    ap.add_argument("--json", default=None, help="also write every figure to this file")
    ap.add_argument("--rounds", type=int, default=1, help="Rust/PyTorch pairs, alternated")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    ensure_torch()
    if args.child:
        return run_child(args, args.child)
    from torch_hermes import loadavg
    load_start = loadavg()
    saved = saved_rust_cases(args)
    rounds = []
    for i in range(max(1, args.rounds)):
        # Case by case, Rust then PyTorch back to back: the pair sees the same VM speed.
        rust, torch_cases = [], []
        for case in CASES:
            if args.semisono:
                rust.append(rust_case(args, case))
            rust += [r for r in saved or [] if r["case"] == case]
            torch_cases += child_results(args, [case])
        rounds.append(dict(rust=rust, torch=torch_cases))
        if args.rounds > 1:
            print(f"round {i + 1}/{args.rounds}: " + ", ".join(
                f"{t['case']} {ratio_of(rust, t):.2f}" for t in torch_cases
                if ratio_of(rust, t) is not None), file=sys.stderr, flush=True)
    print(f"\nload average {load_start} at start, {loadavg()} at end; batch {args.batch} x 3 x "
          f"{args.size}², {args.threads} threads, median of {args.reps} after {args.warmup}"
          + (f"; median over {len(rounds)} rounds" if len(rounds) > 1 else ""))
    print(f"{'case':<9} {'rust ms':>9} {'torch ms':>9} {'ratio':>7} {'rust MiB':>9} "
          f"{'torch MiB':>10} {'ratio':>7} {'rust busy':>9} {'torch busy':>10}"
          + ("  ratio per round" if len(rounds) > 1 else ""))
    fmt = lambda v, d: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    for case in CASES:
        ts = [t for r in rounds for t in r["torch"] if t["case"] == case]
        rs = [x for r in rounds for x in (r["rust"] or []) if x["case"] == case]
        ratios = [ratio_of(r["rust"], t) for r in rounds for t in r["torch"] if t["case"] == case]
        ratios = [x for x in ratios if x is not None]
        t_ms = median([t["median_s"] * 1e3 for t in ts])
        r_ms = median([x["median_s"] * 1e3 for x in rs])
        t_mib = max(t["peak_rss_mib"] for t in ts)
        r_mib = max((x["peak_rss_mib"] for x in rs), default=None)
        print(f"{case:<9} {fmt(r_ms, 1):>9} {fmt(t_ms, 1):>9} {fmt(median(ratios), 2):>7} "
              f"{fmt(r_mib, 0):>9} {fmt(t_mib, 0):>10} "
              f"{fmt(None if r_mib is None else r_mib / t_mib, 2):>7} "
              f"{fmt(median([x['cores_used'] for x in rs]), 2):>9} "
              f"{fmt(median([t['cores_used'] for t in ts]), 2):>10}"
              + ("  " + " ".join(f"{x:.2f}" for x in ratios) if len(rounds) > 1 else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rust=rounds[-1]["rust"], torch=rounds[-1]["torch"], rounds=rounds,
                           loadavg_start=load_start, loadavg_end=loadavg()), f, indent=1)


def median(values):
    """The median of `values` (the mean of the middle two for an even count), or None."""
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def ratio_of(rust, torch_case):
    """Rust's median time over PyTorch's for `torch_case`'s case, or None without Rust figures."""
    r = next((x for x in (rust or []) if x["case"] == torch_case["case"]), None)
    return None if r is None else r["median_s"] / torch_case["median_s"]

if __name__ == "__main__":
    main()
