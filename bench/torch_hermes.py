#!/usr/bin/env python3
"""The Hermes training step and inference in PyTorch (CPU, fp32): the reference for
`semisono bench --train / --infer`.

Same networks, same step, same synthetic data recipe as the Rust bench (docs/benchmarks.md):

* S: Res2Net-101 v1b 26w4s deep-stem encoder (stem + layer1-3; layer4 is not built) with the U-Net
  decoder of spec section 2.1, the pixel projection head on x2 and the consistency head on GAP(x3);
  at the quickstart preset a width-0.25 ResNet-18 encoder instead, as the Rust preset has.
* C: ResNet-18 (torchvision's at width 1 with 3 input channels, otherwise the same BasicBlock
  layout at the preset's width) with the class, projection and consistency heads of section 2.2.
  No IAS attention (the Rust bench's setting; see docs/benchmarks.md).
* One step: C and S each run three train-mode forwards (strong, weak, labeled; S's labeled forward
  returns logits only, as in the Rust code), pseudo-labels from the weak views with the dual
  threshold, the losses of spec section 5 (supervised CE / CE + Dice, weak-to-strong CE / Dice,
  image SupCon, pixel contrast with hard-anchor sampling, ITC with C's vector detached), one backward
  of Loss_seg + Loss_cls (the cross-network terms are detached, so this equals one backward per
  network), Adam on S and SGD (momentum 0.9, weight decay 1e-4) on C.
* The steps are the last ones of the schedule in an epoch where the contrastive terms are on
  (unless --no-contrast), as in the Rust bench.

Each case runs in a child process of its own, so its peak resident memory (VmHWM) is its own.

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch torchvision
    /work/venv-torch/bin/python bench/torch_hermes.py --train --infer --threads 2 --json torch.json
    # each case as a Rust/PyTorch pair back to back, 3 times over; ratio per pair and their median:
    /work/venv-torch/bin/python bench/torch_hermes.py --train --infer --threads 2 \
        --preset hermes-paper --steps 2 --infer-reps 2 --semisono target/release/semisono --rounds 3

Written from the project's spec (shared/specs/hermes.md); no third-party model code is copied.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

RESULT_TAG = "TORCH_HERMES_CASE "
# What `semisono bench --child` prints its result after.
RUST_TAG = "SEMISONO_BENCH_CASE "

# The two presets of crates/semisono-train/src/config.rs, as far as the step's cost depends on them.
PRESETS = {
    "quickstart-cpu": dict(
        seg_backbone="resnet18", cls_backbone="resnet18", width=0.25, size=64, channels=1,
        batch_labeled=4, batch_unlabeled=4, batch_eval=8, steps=300, contrast_after=2,
        max_views=16, max_samples=256, seg_lr=1e-3, cls_lr=1e-2,
    ),
    "hermes-paper": dict(
        seg_backbone="res2net101_v1b", cls_backbone="resnet18", width=1.0, size=224, channels=3,
        batch_labeled=8, batch_unlabeled=8, batch_eval=8, steps=3000, contrast_after=10,
        max_views=100, max_samples=1024, seg_lr=1e-4, cls_lr=1e-4,
    ),
}
LAYERS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3],
          "res2net50_v1b": [3, 4, 6, 3], "res2net101_v1b": [3, 4, 23, 3]}
SEG_CLASSES = CLS_CLASSES = 2
T_MIN, T_MAX = 0.5, 0.95
TAU = TAU_BASE = 0.07
CLS_W, SEG_W, CLS_CON_W, SEG_CON_W, UNSUP_W = 1.1, 0.5, 0.2, 0.8, 0.1
DATA_SEED = 0xBE7C


def status_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mib(kib):
    return None if kib is None else kib / 1024.0


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


# ---------------------------------------------------------------- networks (built in child only)

def build_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def scaled(c, w):
        return max(int(math.floor(c * w + 0.5)), 1)

    def conv_init(module):
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    class Bottle2neck(nn.Module):
        """Res2Net v1b bottleneck (spec 2.1), scale groups processed hierarchically."""

        def __init__(self, inplanes, planes, stride, first, base_width=26, scale=4):
            super().__init__()
            width = max(planes * base_width // 64, 1)
            out = planes * 4
            self.width, self.scale, self.first = width, scale, first
            self.nums = 1 if scale == 1 else scale - 1
            self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width * scale)
            self.convs = nn.ModuleList(
                nn.Conv2d(width, width, 3, stride, 1, bias=False) for _ in range(self.nums))
            self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.nums))
            self.pool = nn.AvgPool2d(3, stride, 1) if first and scale != 1 else None
            self.conv3 = nn.Conv2d(width * scale, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.downsample = None
            if stride != 1 or inplanes != out:
                self.downsample = nn.Sequential(
                    nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False),
                    nn.Conv2d(inplanes, out, 1, bias=False),
                    nn.BatchNorm2d(out))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            groups = torch.split(out, self.width, 1)
            outs = []
            sp = None
            for i in range(self.nums):
                sp = groups[i] if (i == 0 or self.first) else sp + groups[i]
                sp = F.relu(self.bns[i](self.convs[i](sp)))
                outs.append(sp)
            if self.scale != 1:
                last = groups[self.nums]
                outs.append(self.pool(last) if self.pool is not None else last)
            out = self.bn3(self.conv3(torch.cat(outs, 1)))
            shortcut = self.downsample(x) if self.downsample is not None else x
            return F.relu(out + shortcut)

    class Res2NetEncoder(nn.Module):
        """Deep stem + layer1-3 of Res2Net v1b; returns x0 (stem), x1, x2, x3."""

        def __init__(self, layers, width, in_ch):
            super().__init__()
            mid, stem = scaled(32, width), scaled(64, width)
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_ch, mid, 3, 2, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.Conv2d(mid, stem, 3, 1, 1, bias=False))
            self.bn1 = nn.BatchNorm2d(stem)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = stem
            stages = []
            for i, stride in enumerate([1, 2, 2]):
                planes = scaled(64 << i, width)
                blocks = []
                for b in range(layers[i]):
                    blocks.append(Bottle2neck(inplanes, planes, stride if b == 0 else 1, b == 0))
                    inplanes = planes * 4
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.channels = [stem, scaled(64, width) * 4, scaled(128, width) * 4,
                             scaled(256, width) * 4]
            conv_init(self)

        def forward(self, x):
            x0 = F.relu(self.bn1(self.conv1(x)))
            x1 = self.layer1(self.maxpool(x0))
            x2 = self.layer2(x1)
            x3 = self.layer3(x2)
            return x0, x1, x2, x3

    class BasicBlock(nn.Module):
        def __init__(self, inp, out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out)
            self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out)
            self.downsample = None
            if stride != 1 or inp != out:
                self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False),
                                                nn.BatchNorm2d(out))

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            return F.relu(h + (self.downsample(x) if self.downsample is not None else x))

    class ResNetTrunk(nn.Module):
        """torchvision's BasicBlock ResNet layout at a width; torchvision's own resnet18 at width 1
        with 3 input channels. forward returns x0 (stem), x1..x3 and x4 (None without layer4)."""

        def __init__(self, layers, width, in_ch, with_layer4):
            super().__init__()
            if width == 1.0 and in_ch == 3 and layers == [2, 2, 2, 2]:
                import torchvision
                tv = torchvision.models.resnet18(weights=None)
                self.conv1, self.bn1, self.maxpool = tv.conv1, tv.bn1, tv.maxpool
                self.layer1, self.layer2, self.layer3 = tv.layer1, tv.layer2, tv.layer3
                self.layer4 = tv.layer4 if with_layer4 else None
                base = 64
            else:
                base = scaled(64, width)
                self.conv1 = nn.Conv2d(in_ch, base, 7, 2, 3, bias=False)
                self.bn1 = nn.BatchNorm2d(base)
                self.maxpool = nn.MaxPool2d(3, 2, 1)
                inp = base
                stages = []
                for i in range(4 if with_layer4 else 3):
                    out = base << i
                    blocks = []
                    for b in range(layers[i]):
                        blocks.append(BasicBlock(inp, out, (1 if i == 0 else 2) if b == 0 else 1))
                        inp = out
                    stages.append(nn.Sequential(*blocks))
                self.layer1, self.layer2, self.layer3 = stages[:3]
                self.layer4 = stages[3] if with_layer4 else None
                conv_init(self)
            self.channels = [base, base, 2 * base, 4 * base, 8 * base]

        def forward(self, x):
            x0 = F.relu(self.bn1(self.conv1(x)))
            x1 = self.layer1(self.maxpool(x0))
            x2 = self.layer2(x1)
            x3 = self.layer3(x2)
            x4 = self.layer4(x3) if self.layer4 is not None else None
            return x0, x1, x2, x3, x4

    class CB(nn.Module):
        def __init__(self, i, m, o, p=0.25):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(i, m, 3, 1, 1), nn.BatchNorm2d(m)
            self.conv2, self.bn2 = nn.Conv2d(m, o, 3, 1, 1), nn.BatchNorm2d(o)
            self.drop = nn.Dropout(p)

        def forward(self, x):
            x = F.leaky_relu(self.bn1(self.conv1(x)), 0.2)
            x = F.leaky_relu(self.bn2(self.conv2(x)), 0.2)
            return self.drop(x)

    def up(x, ref_hw):
        return F.interpolate(x, size=ref_hw, mode="bilinear", align_corners=True)

    class SegNet(nn.Module):
        """S: encoder, U-Net decoder, pixel projection head on x2, consistency head on GAP(x3)."""

        def __init__(self, backbone, width, in_ch):
            super().__init__()
            if backbone.startswith("res2net"):
                self.encoder = Res2NetEncoder(LAYERS[backbone], width, in_ch)
                c0, c1, c2, c3 = self.encoder.channels
                self.res2net = True
            else:
                self.encoder = ResNetTrunk(LAYERS[backbone], width, in_ch, with_layer4=False)
                c0, c1, c2, c3 = self.encoder.channels[:4]
                self.res2net = False
            self.up1, self.fuse1 = CB(c3, c3, c2), CB(2 * c2, c2, c2)
            self.up2, self.fuse2 = CB(c2, c2, c1), CB(2 * c1, c1, c1)
            self.up3, self.fuse3 = CB(c1, c1, c0), CB(2 * c0, c0, c0)
            self.head = nn.Conv2d(c0, SEG_CLASSES, 1)
            self.proj = nn.Sequential(nn.Conv2d(c2, c2, 1), nn.BatchNorm2d(c2), nn.ReLU(),
                                      nn.Conv2d(c2, 256, 1))
            self.cons = nn.Sequential(nn.Linear(c3, 512, bias=False), nn.BatchNorm1d(512),
                                      nn.ReLU(), nn.Linear(512, 256), nn.BatchNorm1d(256),
                                      nn.ReLU())

        def forward(self, x, heads=True):
            f = self.encoder(x)
            x0, x1, x2, x3 = f[:4]
            d1 = self.up1(up(x3, x2.shape[2:]))
            u1 = self.fuse1(torch.cat([x2, d1], 1))
            d2 = self.up2(up(u1, x1.shape[2:]))
            u2 = self.fuse2(torch.cat([x1, d2], 1))
            d3 = self.up3(up(u2, x0.shape[2:]))
            u3 = self.fuse3(torch.cat([x0, d3], 1))
            logits = self.head(up(u3, x.shape[2:]))
            if not heads:
                return logits
            emb = F.normalize(self.proj(x2), dim=1, eps=1e-12)
            g = self.cons(x3.mean(dim=(2, 3)))
            return logits, emb, g

    class ClsNet(nn.Module):
        """C: ResNet trunk, GAP, class head, projection head, consistency head."""

        def __init__(self, backbone, width, in_ch):
            super().__init__()
            self.trunk = ResNetTrunk(LAYERS[backbone], width, in_ch, with_layer4=True)
            feat = self.trunk.channels[4]
            self.cls_head = nn.Linear(feat, CLS_CLASSES)
            self.proj1, self.proj2 = nn.Linear(feat, 256), nn.Linear(256, 128)
            self.cons = nn.Sequential(nn.Linear(feat, 256, bias=False), nn.BatchNorm1d(256),
                                      nn.ReLU(), nn.Linear(256, 256), nn.BatchNorm1d(256),
                                      nn.ReLU())

        def forward(self, x, heads=True):
            f = self.trunk(x)[4].mean(dim=(2, 3))
            logits = self.cls_head(f)
            if not heads:
                return logits
            h = self.proj2(F.leaky_relu(self.proj1(f), 0.1))
            h = h / h.norm(dim=1, keepdim=True)
            return logits, h, self.cons(f)

    return SegNet, ClsNet


# ---------------------------------------------------------------- synthetic data

def synthetic_images(torch, gen, n, ch, size):
    gray = torch.rand(n, 1, size, size, generator=gen)
    return gray.expand(n, ch, size, size).contiguous()


def ellipse_masks(torch, gen, n, size):
    r = torch.rand(n, 4, generator=gen)
    cy, cx = (0.25 + 0.5 * r[:, 0]) * size, (0.25 + 0.5 * r[:, 1]) * size
    ry, rx = (0.1 + 0.2 * r[:, 2]) * size, (0.1 + 0.2 * r[:, 3]) * size
    g = torch.arange(size, dtype=torch.float32) + 0.5
    dy = (g[None, :, None] - cy[:, None, None]) / ry[:, None, None]
    dx = (g[None, None, :] - cx[:, None, None]) / rx[:, None, None]
    return (dy * dy + dx * dx <= 1.0).long()


def synthetic_batch(torch, p, step):
    gen = torch.Generator().manual_seed(DATA_SEED * 1_000_003 + step)
    nl, nu, ch, size = p["batch_labeled"], p["batch_unlabeled"], p["channels"], p["size"]
    x_l = synthetic_images(torch, gen, nl, ch, size)
    m_l = ellipse_masks(torch, gen, nl, size)
    y_l = torch.randint(0, CLS_CLASSES, (nl,), generator=gen)
    x_w = synthetic_images(torch, gen, nu, ch, size)
    x_s = ((x_w - 0.5) * 1.3 + 0.5).clamp(0.0, 1.0)
    return x_l, m_l, y_l, x_w, x_s


# ---------------------------------------------------------------- the Hermes step

def rampup(c, length):
    if length == 0:
        return 1.0
    c = min(max(c, 0.0), length)
    return math.exp(-5.0 * (1.0 - c / length) ** 2)


def make_step(torch, p, seg, cls, opt_s, opt_c, contrast_on):
    F = torch.nn.functional
    total_steps = p["steps"]

    def select(probs, step):
        """Dual threshold on probabilities [N, K] (rows = images or pixels)."""
        conf, yhat = probs.max(1)
        k = probs.shape[1]
        ratio = torch.bincount(yhat, minlength=k).float() / yhat.numel()
        thr = T_MIN + (T_MAX - T_MIN) * ratio
        confident = conf > thr[yhat]
        ent = -(probs * torch.log(probs + 1e-6)).sum(1)
        tau = (0.75 + 0.25 * rampup(step, total_steps)) * math.log(k)
        return yhat, confident, ent, tau

    def dice_fg(logits, target, keep=None):
        prob = F.softmax(logits, 1)[:, 1]
        tgt = (target == 1).float()
        if keep is not None:
            prob, tgt = prob * keep, tgt * keep
        inter = (prob * tgt).sum()
        d = (2 * inter + 1e-5) / ((prob * prob).sum() + (tgt * tgt).sum() + 1e-5)
        return (1.0 - d) / SEG_CLASSES  # class weights [0, 1], divided by n_classes

    def supcon(h_s, h_w, y, keep):
        feats = torch.cat([h_s, h_w], 0)
        lab = torch.cat([y, y], 0)
        n = feats.shape[0]
        logits = feats @ feats.T / TAU
        logits = logits - logits.max(1, keepdim=True)[0].detach()
        not_self = ~torch.eye(n, dtype=torch.bool)
        pos = (lab[:, None] == lab[None, :]) & not_self
        log_prob = logits - torch.log((logits.exp() * not_self).sum(1, keepdim=True))
        mlpp = (pos * log_prob).sum(1) / pos.sum(1).clamp_min(1)
        loss = -(TAU / TAU_BASE) * mlpp
        return (loss * torch.cat([keep, keep], 0).float()).mean()

    def pixel_contrast(emb, labels, preds, gen):
        """ContrastiveSeg hard-anchor sampling + loss (spec 5.6)."""
        b, dim = emb.shape[:2]
        labels, preds = labels.reshape(b, -1), preds.reshape(b, -1)
        max_views, max_samples = p["max_views"], p["max_samples"]
        pairs = []
        for i in range(b):
            cls_ids = [c for c in torch.unique(labels[i]).tolist()
                       if c != -1 and int((labels[i] == c).sum()) > max_views]
            pairs += [(i, c) for c in cls_ids]
        if not pairs:
            return emb.sum() * 0.0
        n_view = min(max_samples // len(pairs), max_views)
        rows = emb.permute(0, 2, 3, 1).reshape(b, -1, dim)
        xs, ys = [], []
        for i, c in pairs:
            hard = ((labels[i] == c) & (preds[i] != c)).nonzero().squeeze(1)
            easy = ((labels[i] == c) & (preds[i] == c)).nonzero().squeeze(1)
            nh, ne = hard.numel(), easy.numel()
            if nh >= n_view / 2 and ne >= n_view / 2:
                kh = n_view // 2
                ke = n_view - kh
            elif nh >= n_view / 2:
                ke = ne
                kh = n_view - ne
            else:
                kh = nh
                ke = n_view - nh
            hard = hard[torch.randperm(nh, generator=gen)[:kh]]
            easy = easy[torch.randperm(ne, generator=gen)[:ke]]
            xs.append(rows[i, torch.cat([hard, easy])])
            ys.append(c)
        x = torch.stack(xs)  # [pairs, n_view, dim]
        y = torch.tensor(ys)
        anchors = torch.cat(torch.unbind(x, 1), 0)
        lab = y.repeat(n_view)
        n = anchors.shape[0]
        logits = anchors @ anchors.T / TAU
        logits = logits - logits.max(1, keepdim=True)[0].detach()
        same = lab[:, None] == lab[None, :]
        not_self = ~torch.eye(n, dtype=torch.bool)
        pos = same & not_self
        neg = ~same
        exp = logits.exp()
        neg_sum = (exp * neg).sum(1, keepdim=True)
        log_prob = logits - torch.log(exp + neg_sum)
        mlpp = (pos * log_prob).sum(1) / pos.sum(1).clamp_min(1)
        return (-(TAU / TAU_BASE) * mlpp).mean()

    def nearest_down(t, hw):
        h, w = t.shape[-2:]
        iy = (torch.arange(hw[0]) * h) // hw[0]
        ix = (torch.arange(hw[1]) * w) // hw[1]
        return t[:, iy][:, :, ix]

    def step(batch, step_no):
        x_l, m_l, y_l, x_w, x_s = batch
        losses = {}
        # ---- classifier ----
        z_s, h_s, g_cls_s = cls(x_s)
        z_w, h_w, _ = cls(x_w)
        z_l, _, _ = cls(x_l)
        sup_c = F.cross_entropy(z_l, y_l)
        with torch.no_grad():
            yhat, confident, ent, tau = select(F.softmax(z_w, 1), step_no)
            keep = confident & (ent < tau)
        unsup_c = (F.cross_entropy(z_s, yhat, reduction="none") * keep.float()).mean()
        inner_c = sup_c + UNSUP_W * unsup_c
        if contrast_on:
            con_c = supcon(h_s, h_w, yhat, keep)
            inner_c = inner_c + CLS_CON_W * con_c
            losses["cls_contrast"] = con_c
        loss_cls = CLS_W * inner_c
        # ---- segmenter ----
        o_s, e_s, g_seg_s = seg(x_s)
        o_w, e_w, _ = seg(x_w)
        o_l = seg(x_l, heads=False)
        ce = F.cross_entropy(o_l, m_l)
        sup_s = (0.5 * ce + dice_fg(o_l, m_l)) / 2.0
        with torch.no_grad():
            pw = F.softmax(o_w, 1)
            b, k, hh, ww = pw.shape
            rows = pw.permute(0, 2, 3, 1).reshape(-1, k)
            yhat_s, confident_s, ent_s, tau_s = select(rows, step_no)
            dice_keep = (confident_s | (ent_s <= tau_s)).float().reshape(b, hh, ww)
            yhat_s = yhat_s.reshape(b, hh, ww)
        unsup_s = dice_fg(o_s, yhat_s, dice_keep)
        inner_s = sup_s + UNSUP_W * unsup_s
        if contrast_on:
            with torch.no_grad():
                lab = torch.where(ent_s.reshape(b, hh, ww) > tau_s, -1, yhat_s)
                eh, ew = e_s.shape[2:]
                lab = nearest_down(lab, (eh, ew))
                pred = nearest_down(o_s.argmax(1), (eh, ew))
            gen = torch.Generator().manual_seed(step_no)
            con_s = pixel_contrast((e_s + e_w) / 2.0, lab, pred, gen)
            inner_s = inner_s + SEG_CON_W * con_s
            losses["seg_contrast"] = con_s
        w_itc = rampup(step_no // 100, 40)
        g_c = F.normalize(g_cls_s.detach(), dim=1, eps=1e-12)
        g_s = F.normalize(g_seg_s, dim=1, eps=1e-12)
        itc = 1.0 - F.cosine_similarity(g_c, g_s, dim=1, eps=1e-8).mean()
        loss_seg = SEG_W * inner_s + w_itc * itc
        losses.update(cls_sup=sup_c, cls_unsup=unsup_c, seg_sup=sup_s, seg_unsup=unsup_s,
                      itc=itc, seg_total=loss_seg, cls_total=loss_cls)
        values = {k: v.item() for k, v in losses.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise RuntimeError(f"non-finite loss at step {step_no}: {values}")
        opt_s.zero_grad(set_to_none=True)
        opt_c.zero_grad(set_to_none=True)
        (loss_seg + loss_cls).backward()
        opt_s.step()
        opt_c.step()
        return values

    return step


# ---------------------------------------------------------------- one case (child process)

def progress(case, i, warmup, secs):
    if i < warmup:
        what = f"warm-up {i + 1}/{warmup}"
    else:
        what = f"measured {i + 1 - warmup}"
    print(f"  torch {case} {what}: {secs:.3f} s", file=sys.stderr, flush=True)


def run_child(args, case):
    kind, preset = case.split(":", 1)
    p = PRESETS[preset]
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base_kib = status_kib("VmRSS")
    SegNet, ClsNet = build_modules()
    t0 = time.perf_counter()
    seg = SegNet(p["seg_backbone"], p["width"], p["channels"])
    cls = ClsNet(p["cls_backbone"], p["width"], p["channels"])
    build_s = time.perf_counter() - t0
    warm, meas, last = [], [], {}
    meas_cpu = 0.0  # process CPU seconds (all threads) over the measured repetitions
    first_step = epoch = 0
    infer_batch = args.infer_batch or p["batch_eval"]
    if kind == "train":
        seg.train()
        cls.train()
        opt_s = torch.optim.Adam(seg.parameters(), lr=p["seg_lr"], betas=(0.9, 0.999), eps=1e-8)
        opt_c = torch.optim.SGD(cls.parameters(), lr=p["cls_lr"], momentum=0.9,
                                weight_decay=1e-4)
        contrast_on = not args.no_contrast
        epoch = p["contrast_after"] + 1 if contrast_on else 0
        step = make_step(torch, p, seg, cls, opt_s, opt_c, contrast_on)
        total = args.warmup + args.steps
        last_step = max(p["steps"], total)
        first_step = last_step + 1 - total
        for i, t in enumerate(range(first_step, last_step + 1)):
            batch = synthetic_batch(torch, p, t)
            cpu, start = time.process_time(), time.perf_counter()
            last = step(batch, t)
            secs = time.perf_counter() - start
            (warm if i < args.warmup else meas).append(secs)
            if i >= args.warmup:
                meas_cpu += time.process_time() - cpu
            progress(case, i, args.warmup, secs)
    else:
        seg.eval()
        cls.eval()
        gen = torch.Generator().manual_seed(DATA_SEED)
        x = synthetic_images(torch, gen, infer_batch, p["channels"], p["size"])
        for i in range(args.warmup + args.infer_reps):
            cpu, start = time.process_time(), time.perf_counter()
            with torch.inference_mode():
                ps = torch.softmax(seg(x, heads=False), 1)
                pc = torch.softmax(cls(x, heads=False), 1)
                ps.numpy()
                pc.numpy()
            secs = time.perf_counter() - start
            (warm if i < args.warmup else meas).append(secs)
            if i >= args.warmup:
                meas_cpu += time.process_time() - cpu
            progress(case, i, args.warmup, secs)
    mean_s = sum(meas) / len(meas)
    min_s = min(meas)
    result = dict(
        kind=kind, preset=preset, framework=f"torch {torch.__version__}",
        seg_backbone=p["seg_backbone"], cls_backbone=p["cls_backbone"],
        width_multiplier=p["width"], image_size=p["size"], in_channels=p["channels"],
        batch_labeled=p["batch_labeled"], batch_unlabeled=p["batch_unlabeled"],
        infer_batch=infer_batch, attention=False,
        contrast=kind == "train" and not args.no_contrast, threads=torch.get_num_threads(),
        warmup_s=warm, measured_s=meas, mean_s=mean_s, min_s=min_s,
        measured_cpu_s=meas_cpu, cores_used=meas_cpu / sum(meas),
        it_per_s=1.0 / mean_s if kind == "train" else None,
        ms_per_image_mean=mean_s * 1e3 / infer_batch if kind == "infer" else None,
        ms_per_image_min=min_s * 1e3 / infer_batch if kind == "infer" else None,
        build_s=build_s, base_rss_mib=mib(base_kib), peak_rss_mib=mib(status_kib("VmHWM")),
        first_step=first_step, epoch=epoch, last_step=sorted(last.items()),
        loadavg_end=loadavg(),
    )
    print(RESULT_TAG + json.dumps(result), flush=True)


def median(values):
    """The upper median, as the Rust bench takes it."""
    return sorted(values)[len(values) // 2]


def child_args(args):
    """The step / repetition / thread options both children take."""
    out = ["--steps", str(args.steps), "--warmup", str(args.warmup),
           "--infer-reps", str(args.infer_reps), "--threads", str(args.threads)]
    if args.infer_batch:
        out += ["--infer-batch", str(args.infer_batch)]
    if args.no_contrast:
        out.append("--no-contrast")
    return out


def run_torch(args, case):
    """One PyTorch case in a child process of its own (its own peak memory)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", case] + child_args(args)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith(RESULT_TAG))
    return json.loads(line[len(RESULT_TAG):])


def run_rust(args, case):
    """The same case in Rust: `semisono bench --child CASE`, IAS attention off as here."""
    print(f"torch_hermes: rust {case} ...", file=sys.stderr, flush=True)
    cmd = [args.semisono, "bench", "--child", case, "--set", "hermes.attention=false"]
    out = subprocess.run(cmd + child_args(args), stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith(RUST_TAG))
    return json.loads(line[len(RUST_TAG):])


def print_pairs(pairs):
    """Each case's Rust / PyTorch ratio of medians per back-to-back pair, and their median."""
    if not pairs:
        return
    print("\nRust / PyTorch, median step or pass of each back-to-back pair:")
    for case in dict.fromkeys(p["case"] for p in pairs):
        mine = [p for p in pairs if p["case"] == case]
        ratios = [p["ratio"] for p in mine]
        peak = [p["rust"]["peak_rss_mib"] / p["torch"]["peak_rss_mib"] for p in mine
                if p["rust"].get("peak_rss_mib") and p["torch"].get("peak_rss_mib")]
        print(f"  {case:<22} ratio {median(ratios):.2f}x (pairs: "
              + " ".join(f"{r:.2f}" for r in ratios) + ")"
              + (f", peak memory {median(peak):.2f}x" if peak else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", action="store_true", help="time training steps")
    ap.add_argument("--infer", action="store_true", help="time inference")
    ap.add_argument("--preset", default="quickstart-cpu,hermes-paper",
                    help="comma separated: " + ", ".join(PRESETS))
    ap.add_argument("--steps", type=int, default=3, help="measured training steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps / passes first")
    ap.add_argument("--infer-reps", type=int, default=5, help="measured inference passes")
    ap.add_argument("--infer-batch", type=int, default=None, help="images per inference pass")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--no-contrast", action="store_true",
                    help="run the steps in epoch 0, where the contrastive terms are off")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--semisono", default=None,
                    help="semisono binary: run each case in Rust too, right before PyTorch")
    ap.add_argument("--rounds", type=int, default=1,
                    help="Rust/PyTorch pairs per case (with --semisono); the median ratio is printed")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_child(args, args.child)
        return
    if not (args.train or args.infer):
        ap.error("pass --train and/or --infer")
    presets = [p for p in args.preset.split(",") if p]
    for p in presets:
        if p not in PRESETS:
            ap.error(f"unknown preset {p!r}; known: {', '.join(PRESETS)}")
    kinds = [k for k, on in (("train", args.train), ("infer", args.infer)) if on]
    load_start = loadavg()
    print(f"torch_hermes: load average {load_start} (1, 5, 15 min)", file=sys.stderr)
    results, pairs = [], []
    for round_no in range(max(1, args.rounds)):
        for preset in presets:
            for kind in kinds:
                case = f"{kind}:{preset}"
                rust = run_rust(args, case) if args.semisono else None
                print(f"torch_hermes: {case} ...", file=sys.stderr, flush=True)
                torch_case = run_torch(args, case)
                results.append(torch_case)
                if rust:
                    pairs.append(dict(case=case, round=round_no + 1, rust=rust, torch=torch_case,
                                      ratio=median(rust["measured_s"])
                                      / median(torch_case["measured_s"])))
                    print(f"round {round_no + 1}: {case} rust {median(rust['measured_s']):.3f} s, "
                          f"torch {median(torch_case['measured_s']):.3f} s, "
                          f"ratio {pairs[-1]['ratio']:.2f}", file=sys.stderr, flush=True)
    report = dict(framework=results[0]["framework"] if results else None,
                  cores=os.cpu_count(), loadavg_start=load_start, loadavg_end=loadavg(),
                  cases=results, pairs=pairs)
    print(f"\n{report['framework']}, {report['cores']} core(s), load average "
          f"{load_start} at start, {report['loadavg_end']} at end")
    for r in results:
        nets = f"{r['seg_backbone']} + {r['cls_backbone']} x{r['width_multiplier']}"
        peak = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else "n/a"
        base = f"{r['base_rss_mib']:.0f}" if r["base_rss_mib"] is not None else "n/a"
        if r["kind"] == "train":
            print(f"train {r['preset']:<15} {nets:<34} {r['batch_labeled']}+"
                  f"{r['batch_unlabeled']}u @{r['image_size']}² {r['in_channels']}ch "
                  f"thr {r['threads']} busy {r['cores_used']:.2f}: {r['mean_s']:.3f} s/step "
                  f"(min {r['min_s']:.3f}), {r['it_per_s']:.4g} it/s, "
                  f"peak {peak} MB (base {base} MB)")
        else:
            print(f"infer {r['preset']:<15} {nets:<34} {r['infer_batch']} @{r['image_size']}² "
                  f"{r['in_channels']}ch thr {r['threads']} busy {r['cores_used']:.2f}: "
                  f"{r['mean_s']:.3f} s/batch, "
                  f"{r['ms_per_image_mean']:.1f} ms/image (min {r['ms_per_image_min']:.1f}), "
                  f"peak {peak} MB (base {base} MB)")
    print_pairs(pairs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
