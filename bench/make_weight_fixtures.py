#!/usr/bin/env python3
"""Writes the small PyTorch weight fixtures of crates/semisono-nn/tests/pretrained.rs.

Needs torch only (no torchvision, no network). Run from the repository root:

    python3 -m venv /tmp/venv-torch        # outside the repository
    /tmp/venv-torch/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/venv-torch/bin/python bench/make_weight_fixtures.py

It writes into crates/semisono-nn/tests/fixtures/:

* resnet18_w0125.pth: a torchvision-layout ResNet-18 state_dict at width 1/8 (stage channels
  8/16/32/64 instead of 64/128/256/512) with a 3-class `fc`, the exact key names torchvision uses
  (including `num_batches_tracked`), seeded random values (zip format, torch >= 1.6);
* res2net_v1b_1111_w0125.pth: an official-layout Res2Net v1b 26w x 4s state_dict with one block
  per stage, at width 1/8, saved in the legacy (pre-1.6, non-zip) format the published Res2Net
  checkpoints use;
* unrelated.pth: a tiny state_dict of another architecture (VGG-like keys);
* pretrained_oracle.json: eval-mode forward passes of both networks on a fixed input, written with
  torch.nn.functional (torchvision's ResNet class cannot take custom widths), mirroring
  torchvision's BasicBlock and res2net_v1b.py's Bottle2neck op for op: pooled final features,
  per-stage outputs, and the ResNet's logits; also the ResNet with ImageNet mean/std input
  normalisation.

The fixed input needs no file: x[n, c, h, w] = ((7n + 13c + 31h + 17w) mod 97) / 96, exact in f32.
The values depend on torch's RNG, so another torch version may write other (equally valid) files;
the committed ones are the reference.
"""

import json
import math
import os
from collections import OrderedDict

import torch
import torch.nn.functional as F

OUT = os.path.join("crates", "semisono-nn", "tests", "fixtures")
SEED = 20240613
EPS = 1e-5  # torch BatchNorm2d default
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INPUT_SHAPE = (2, 3, 40, 40)  # odd sizes deeper in: 10 -> 5 -> 3 -> 2 (padding, ceil mode)


def fixed_input(shape=INPUT_SHAPE):
    n, c, h, w = (torch.arange(s, dtype=torch.int64) for s in shape)
    v = (7 * n[:, None, None, None] + 13 * c[None, :, None, None]
         + 31 * h[None, None, :, None] + 17 * w[None, None, None, :]) % 97
    return (v.to(torch.float64) / 96.0).to(torch.float32)


class Params:
    """Seeded values for one state_dict, in insertion order."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.sd = OrderedDict()

    def conv(self, key, out_c, in_c, k):
        fan_out = out_c * k * k  # torchvision's kaiming_normal_(mode="fan_out") scale
        w = torch.randn(out_c, in_c, k, k, generator=self.g) * math.sqrt(2.0 / fan_out)
        self.sd[key + ".weight"] = w

    def bn(self, key, c):
        g = self.g
        self.sd[key + ".weight"] = 0.5 + torch.rand(c, generator=g)
        self.sd[key + ".bias"] = 0.1 * torch.randn(c, generator=g)
        self.sd[key + ".running_mean"] = 0.1 * torch.randn(c, generator=g)
        self.sd[key + ".running_var"] = 0.5 + torch.rand(c, generator=g)
        self.sd[key + ".num_batches_tracked"] = torch.tensor(100, dtype=torch.int64)

    def linear(self, key, out_f, in_f):
        bound = 1.0 / math.sqrt(in_f)
        self.sd[key + ".weight"] = (torch.rand(out_f, in_f, generator=self.g) * 2 - 1) * bound
        self.sd[key + ".bias"] = (torch.rand(out_f, generator=self.g) * 2 - 1) * bound


def bn_eval(x, sd, key):
    return F.batch_norm(x, sd[key + ".running_mean"], sd[key + ".running_var"],
                        sd[key + ".weight"], sd[key + ".bias"], training=False, eps=EPS)


# ---------------------------------------------------------------------------------------------
# ResNet-18 (torchvision BasicBlock), width 1/8

RESNET_LAYERS = [2, 2, 2, 2]
RESNET_WIDTHS = [8, 16, 32, 64]
RESNET_CLASSES = 3


def resnet_state_dict():
    p = Params(SEED)
    p.conv("conv1", RESNET_WIDTHS[0], 3, 7)
    p.bn("bn1", RESNET_WIDTHS[0])
    inplanes = RESNET_WIDTHS[0]
    for s, (blocks, planes) in enumerate(zip(RESNET_LAYERS, RESNET_WIDTHS)):
        stride = 1 if s == 0 else 2
        for b in range(blocks):
            k = f"layer{s + 1}.{b}"
            p.conv(k + ".conv1", planes, inplanes, 3)
            p.bn(k + ".bn1", planes)
            p.conv(k + ".conv2", planes, planes, 3)
            p.bn(k + ".bn2", planes)
            if b == 0 and (stride != 1 or inplanes != planes):
                p.conv(k + ".downsample.0", planes, inplanes, 1)
                p.bn(k + ".downsample.1", planes)
            inplanes = planes
    p.linear("fc", RESNET_CLASSES, RESNET_WIDTHS[-1])
    return p.sd


def basic_block(x, sd, k, stride):
    out = F.relu(bn_eval(F.conv2d(x, sd[k + ".conv1.weight"], stride=stride, padding=1), sd, k + ".bn1"))
    out = bn_eval(F.conv2d(out, sd[k + ".conv2.weight"], stride=1, padding=1), sd, k + ".bn2")
    if k + ".downsample.0.weight" in sd:
        identity = bn_eval(F.conv2d(x, sd[k + ".downsample.0.weight"], stride=stride), sd, k + ".downsample.1")
    else:
        identity = x
    return F.relu(out + identity)


def resnet_forward(sd, x):
    x = F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)
    stem = F.relu(bn_eval(x, sd, "bn1"))
    x = F.max_pool2d(stem, kernel_size=3, stride=2, padding=1)
    stages = []
    for s, blocks in enumerate(RESNET_LAYERS):
        for b in range(blocks):
            x = basic_block(x, sd, f"layer{s + 1}.{b}", 2 if (s > 0 and b == 0) else 1)
        stages.append(x)
    features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    logits = F.linear(features, sd["fc.weight"], sd["fc.bias"])
    return stem, stages, features, logits


# ---------------------------------------------------------------------------------------------
# Res2Net v1b 26w x 4s (res2net_v1b.py), one block per stage, width 1/8

R2_LAYERS = [1, 1, 1, 1]
R2_PLANES = [8, 16, 32, 64]
R2_STEM = (4, 8)  # deep stem: 32 and 64 channels at full width
R2_BASE_WIDTH = 26
R2_SCALE = 4
EXPANSION = 4


def r2_width(planes):
    return int(math.floor(planes * (R2_BASE_WIDTH / 64.0)))


def res2net_state_dict():
    p = Params(SEED + 1)
    mid, out = R2_STEM
    p.conv("conv1.0", mid, 3, 3)
    p.bn("conv1.1", mid)
    p.conv("conv1.3", mid, mid, 3)
    p.bn("conv1.4", mid)
    p.conv("conv1.6", out, mid, 3)
    p.bn("bn1", out)
    inplanes = out
    for s, (blocks, planes) in enumerate(zip(R2_LAYERS, R2_PLANES)):
        stride = 1 if s == 0 else 2
        width = r2_width(planes)
        nums = 1 if R2_SCALE == 1 else R2_SCALE - 1
        for b in range(blocks):
            k = f"layer{s + 1}.{b}"
            p.conv(k + ".conv1", width * R2_SCALE, inplanes, 1)
            p.bn(k + ".bn1", width * R2_SCALE)
            for i in range(nums):
                p.conv(f"{k}.convs.{i}", width, width, 3)
            for i in range(nums):
                p.bn(f"{k}.bns.{i}", width)
            p.conv(k + ".conv3", planes * EXPANSION, width * R2_SCALE, 1)
            p.bn(k + ".bn3", planes * EXPANSION)
            if b == 0 and (stride != 1 or inplanes != planes * EXPANSION):
                # downsample.0 is the AvgPool2d: no parameters.
                p.conv(k + ".downsample.1", planes * EXPANSION, inplanes, 1)
                p.bn(k + ".downsample.2", planes * EXPANSION)
            inplanes = planes * EXPANSION
    p.linear("fc", 2, R2_PLANES[-1] * EXPANSION)
    return p.sd


def bottle2neck(x, sd, k, stride, stage, width):
    out = F.relu(bn_eval(F.conv2d(x, sd[k + ".conv1.weight"]), sd, k + ".bn1"))
    spx = torch.split(out, width, 1)
    nums = 1 if R2_SCALE == 1 else R2_SCALE - 1
    for i in range(nums):
        sp = spx[i] if (i == 0 or stage) else sp + spx[i]
        sp = F.conv2d(sp, sd[f"{k}.convs.{i}.weight"], stride=stride, padding=1)
        sp = F.relu(bn_eval(sp, sd, f"{k}.bns.{i}"))
        out = sp if i == 0 else torch.cat((out, sp), 1)
    if R2_SCALE != 1 and not stage:
        out = torch.cat((out, spx[nums]), 1)
    elif R2_SCALE != 1 and stage:
        out = torch.cat((out, F.avg_pool2d(spx[nums], kernel_size=3, stride=stride, padding=1)), 1)
    out = bn_eval(F.conv2d(out, sd[k + ".conv3.weight"]), sd, k + ".bn3")
    if k + ".downsample.1.weight" in sd:
        r = F.avg_pool2d(x, kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False)
        residual = bn_eval(F.conv2d(r, sd[k + ".downsample.1.weight"]), sd, k + ".downsample.2")
    else:
        residual = x
    return F.relu(out + residual)


def res2net_forward(sd, x):
    x = F.conv2d(x, sd["conv1.0.weight"], stride=2, padding=1)
    x = F.relu(bn_eval(x, sd, "conv1.1"))
    x = F.conv2d(x, sd["conv1.3.weight"], stride=1, padding=1)
    x = F.relu(bn_eval(x, sd, "conv1.4"))
    x = F.conv2d(x, sd["conv1.6.weight"], stride=1, padding=1)
    stem = F.relu(bn_eval(x, sd, "bn1"))
    x = F.max_pool2d(stem, kernel_size=3, stride=2, padding=1)
    stages = []
    for s, (blocks, planes) in enumerate(zip(R2_LAYERS, R2_PLANES)):
        for b in range(blocks):
            stride = 2 if (s > 0 and b == 0) else 1
            x = bottle2neck(x, sd, f"layer{s + 1}.{b}", stride, b == 0, r2_width(planes))
        stages.append(x)
    features = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return stem, stages, features


# ---------------------------------------------------------------------------------------------

def as_list(t):
    """Nested lists of the values, to 9 significant digits (round-trips f32)."""
    def walk(v):
        return [walk(e) for e in v] if isinstance(v, list) else float("%.9g" % v)
    return walk(t.detach().to(torch.float64).tolist())


def forward_record(stem, stages, features, logits=None):
    rec = {
        "stem": as_list(stem),
        "layer1": as_list(stages[0]),
        "layer2": as_list(stages[1]),
        "layer3": as_list(stages[2]),
        "layer4": as_list(stages[3]),
        "features": as_list(features),
    }
    if logits is not None:
        rec["logits"] = as_list(logits)
    return rec


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_grad_enabled(False)
    x = fixed_input()

    resnet = resnet_state_dict()
    torch.save(resnet, os.path.join(OUT, "resnet18_w0125.pth"))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    res2net = res2net_state_dict()
    torch.save(res2net, os.path.join(OUT, "res2net_v1b_1111_w0125.pth"),
               _use_new_zipfile_serialization=False)

    unrelated = OrderedDict()
    g = torch.Generator().manual_seed(SEED + 2)
    unrelated["features.0.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    unrelated["features.0.bias"] = torch.randn(4, generator=g)
    unrelated["classifier.weight"] = torch.randn(2, 4, generator=g)
    unrelated["classifier.bias"] = torch.randn(2, generator=g)
    torch.save(unrelated, os.path.join(OUT, "unrelated.pth"))

    oracle = {
        "about": "written by bench/make_weight_fixtures.py with torch " + torch.__version__,
        "input": {
            "shape": list(INPUT_SHAPE),
            "formula": "((7n + 13c + 31h + 17w) mod 97) / 96",
        },
        "resnet18_w0125": {
            "file": "resnet18_w0125.pth",
            "layers": RESNET_LAYERS,
            "width_multiplier": 0.125,
            "tensors": len(resnet),
            "plain": forward_record(*resnet_forward(resnet, x)),
            "imagenet_norm": {
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
                **{k: v for k, v in forward_record(*resnet_forward(resnet, (x - mean) / std)).items()
                   if k in ("features", "logits")},
            },
        },
        "res2net_v1b_1111_w0125": {
            "file": "res2net_v1b_1111_w0125.pth",
            "layers": R2_LAYERS,
            "width_multiplier": 0.125,
            "tensors": len(res2net),
            "plain": forward_record(*res2net_forward(res2net, x)),
        },
    }
    with open(os.path.join(OUT, "pretrained_oracle.json"), "w") as f:
        json.dump(oracle, f, separators=(",", ":"))
        f.write("\n")

    for name in ("resnet18_w0125.pth", "res2net_v1b_1111_w0125.pth", "unrelated.pth",
                 "pretrained_oracle.json"):
        size = os.path.getsize(os.path.join(OUT, name))
        assert size < 2 * 1024 * 1024, f"{name} is {size} bytes, over 2 MB"
        print(f"{name}: {size} bytes")


if __name__ == "__main__":
    main()
