"""How hard are the phantoms? Train a small U-Net briefly and report Dice per quality bin.

Also measures generation speed (frames per CPU-second, one process). torch is used here only
(bench/ is outside app/). Usage::

    python bench/phantom_difficulty.py --modality echo [--train 40 --test 30 --frames 10 --epochs 12]
    python bench/phantom_difficulty.py --modality cine

Prints a JSON summary (and writes it to ``--out`` when given). Everything is seeded.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from app.data.datasets import phantom_dataset, render_case
from app.data.phantom.quality import QUALITY_BINS
from app.metrics import mean_dice


class SmallUNet(nn.Module):
    """Three-level U-Net: (N, C_in, H, W) -> (N, n_classes, H, W) logits; H, W divisible by 8."""

    def __init__(self, c_in: int, n_classes: int, width: int = 12):
        super().__init__()

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
                                 nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True))

        w = width
        self.enc = nn.ModuleList([block(c_in, w), block(w, 2 * w), block(2 * w, 4 * w)])
        self.mid = block(4 * w, 8 * w)
        self.up = nn.ModuleList([nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), nn.ConvTranspose2d(4 * w, 2 * w, 2, 2),
                                 nn.ConvTranspose2d(2 * w, w, 2, 2)])
        self.dec = nn.ModuleList([block(8 * w, 4 * w), block(4 * w, 2 * w), block(2 * w, w)])
        self.head = nn.Conv2d(w, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.mid(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def to_samples(cases, modality: str, size: int, frames_per_case: int):
    """Cases -> (images (N, C, size, size) float32 in [0, 1], labels (N, size, size) int64, case index, quality)."""
    xs, ys, idx, qs = [], [], [], []
    for ci, case in enumerate(cases):
        t_sel = np.linspace(0, case.n_frames - 1, min(frames_per_case, case.n_frames)).round().astype(int)
        for t in t_sel:
            if modality == "echo":
                img = cv2.resize(case.frames[t], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
                xs.append(img.transpose(2, 0, 1))
                ys.append(cv2.resize(case.labels[t], (size, size), interpolation=cv2.INTER_NEAREST))
                idx.append(ci)
                qs.append(case.quality)
            else:
                for z in range(case.n_slices):
                    img = case.frames[t, z]
                    img = img / max(float(np.percentile(img, 99.5)), 1e-6)
                    pad = [(0, size - img.shape[0]), (0, size - img.shape[1])]
                    xs.append(np.pad(np.clip(img, 0, 1.5), pad)[None].astype(np.float32))
                    ys.append(np.pad(case.labels[t, z], pad))
                    idx.append(ci)
                    qs.append(case.quality)
    return np.stack(xs), np.stack(ys).astype(np.int64), np.array(idx), np.array(qs)


def generation_speed(modality: str, seed: int, n_cases: int) -> dict:
    """Frames (echo, 256x256) or slice-frames (cine, 128x112) rendered per CPU-second, this process."""
    t_cpu, t_wall, n = time.process_time(), time.perf_counter(), 0
    for i in range(n_cases):
        case = render_case(modality, seed + 1000, i)
        n += case.n_frames * (case.n_slices if modality == "cine" else 1)
    cpu, wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    return {"frames": n, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "frames_per_cpu_s": round(n / cpu, 1), "frames_per_wall_s": round(n / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("echo", "cine"), default="echo")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--test", type=int, default=36)
    parser.add_argument("--frames", type=int, default=10, help="frames per echo case / per cine case")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    speed = generation_speed(args.modality, args.seed, 3 if args.modality == "echo" else 2)
    t0 = time.perf_counter()
    kwargs = {"n_frames": args.frames} if args.modality == "echo" else {"n_frames": args.frames, "n_slices": 4}
    train_cases = phantom_dataset(args.modality, args.train, seed=args.seed, cache_dir=args.cache, **kwargs)
    test_cases = phantom_dataset(args.modality, args.test, seed=args.seed + 1, cache_dir=args.cache, **kwargs)
    size = 128
    x_tr, y_tr, _, _ = to_samples(train_cases, args.modality, size, args.frames)
    x_te, y_te, c_te, q_te = to_samples(test_cases, args.modality, size, args.frames)
    n_classes = 2 if args.modality == "echo" else 4
    classes = list(range(1, n_classes))
    t_data = time.perf_counter() - t0

    model = SmallUNet(x_tr.shape[1], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x_tr_t, y_tr_t = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    batch = 16
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x_tr)))
        total = 0.0
        for start in range(0, len(order), batch):
            b = order[start : start + batch]
            xb, yb = x_tr_t[b], y_tr_t[b]
            if rng.uniform() < 0.5:  # flip augmentation
                xb, yb = xb.flip(-1), yb.flip(-1)
            logits = model(xb)
            prob = logits.softmax(1)
            onehot = nn.functional.one_hot(yb, n_classes).permute(0, 3, 1, 2).float()
            inter = (prob * onehot)[:, 1:].sum((0, 2, 3))
            dice = (2 * inter + 1) / (prob[:, 1:].sum((0, 2, 3)) + onehot[:, 1:].sum((0, 2, 3)) + 1)
            loss = nn.functional.cross_entropy(logits, yb) + (1 - dice).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(order):.3f}", flush=True)
    t_train = time.perf_counter() - t1

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(torch.from_numpy(x_te[i : i + 32])).argmax(1) for i in range(0, len(x_te), 32)]).numpy()
    # Dice per test case (all its sampled frames/slices pooled per frame, then averaged).
    per_sample = np.array([mean_dice(pred[i], y_te[i], classes) for i in range(len(pred))])
    per_case = {}
    for ci in np.unique(c_te):
        scores = per_sample[c_te == ci]
        per_case[int(ci)] = (float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan"), float(q_te[c_te == ci][0]))
    summary = {"bins": {}}
    for name, lo, hi in QUALITY_BINS:
        frame_scores = per_sample[(q_te >= lo) & ((q_te < hi) | (hi == 1.0)) & np.isfinite(per_sample)]
        case_scores = np.array([d for d, q in per_case.values() if lo <= q < hi or (hi == 1.0 and q == 1.0)])
        if frame_scores.size == 0:
            continue
        summary["bins"][name] = {
            "cases": int(case_scores.size), "frames": int(frame_scores.size),
            "frame_dice_mean": round(float(frame_scores.mean()), 3), "frame_dice_std": round(float(frame_scores.std()), 3),
            "frame_dice_p10": round(float(np.percentile(frame_scores, 10)), 3),
            "frame_dice_p90": round(float(np.percentile(frame_scores, 90)), 3),
            "frame_dice_min": round(float(frame_scores.min()), 3), "frame_dice_max": round(float(frame_scores.max()), 3),
            "frames_below_0.5": round(float((frame_scores < 0.5).mean()), 3),
            "case_dice_mean": round(float(np.nanmean(case_scores)), 3), "case_dice_min": round(float(np.nanmin(case_scores)), 3),
        }
    summary.update({
        "modality": args.modality, "train_cases": args.train, "test_cases": args.test, "frames_per_case": args.frames,
        "epochs": args.epochs, "input": f"{size}x{size}", "all_frame_dice_mean": round(float(np.nanmean(per_sample)), 3),
        "quality_dice_spearman": round(float(_spearman(q_te[np.isfinite(per_sample)], per_sample[np.isfinite(per_sample)])), 3),
        "generation_speed_one_process": speed, "data_s": round(t_data, 1), "train_s": round(t_train, 1),
        "torch_threads": args.threads, "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)",
    })
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
