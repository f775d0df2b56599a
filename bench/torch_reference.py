#!/usr/bin/python3
"""PyTorch reference for `npm run bench`: the same workloads as bench/workload.mjs, one per process.

Run with Debian's /usr/bin/python3 (PyTorch 1.13 + torchvision). Inference uses PyTorch's fastest mode
here (torch.jit.trace + torch.jit.freeze, eval); training uses normal eager mode, Adam lr 1e-5, BCE with
logits. The head is the seed's dropout(0.5) -> Linear(2048, 1). "Frozen 148" freezes exactly what
src/models/head.ts does for ResNet-152: everything except the last bottleneck's three convs (+ their
batchnorms) and the head; frozen batchnorms run in eval mode.

--precision bf16 (training): the forward and loss under torch.cpu.amp.autocast(dtype=torch.bfloat16), PyTorch's
mixed precision on the CPU (bf16 convolutions and matrix products through oneDNN, float32 weights and Adam).

Usage: /usr/bin/python3 bench/torch_reference.py <infer|train> --arch resnet152 --batch 8 --size 320
       [--freeze 148] [--warmup 1] [--runs 3] [--threads 2] [--precision fp32|bf16]
Prints one JSON line: {workload, seconds, median, maxRssMB, ...}.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def build(arch: str) -> nn.Module:
    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(model.fc.in_features, 1))
    return model


def freeze_resnet152_148(model: nn.Module) -> list:
    """Trainable: layer4[-1].conv1..3 + bn1..3 and the head; everything else frozen (bns in eval)."""
    for p in model.parameters():
        p.requires_grad_(False)
    last = model.layer4[-1]
    trainable = [last.conv1, last.bn1, last.conv2, last.bn2, last.conv3, last.bn3, model.fc]
    for m in trainable:
        for p in m.parameters():
            p.requires_grad_(True)
    return trainable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["infer", "train"])
    ap.add_argument("--arch", default="resnet152")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--freeze", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.arch)
    x = torch.rand(a.batch, 3, a.size, a.size) * 4 - 2

    if a.kind == "infer":
        model.eval()
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(model, x))

            def step():
                traced(x)
    else:
        model.train()
        trainable = None
        if a.freeze:
            if a.arch != "resnet152" or a.freeze != 148:
                raise SystemExit("only resnet152 with 148 frozen layers is mirrored here")
            trainable = freeze_resnet152_148(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=1e-5)
        y = (torch.rand(a.batch, 1) > 0.5).float()
        loss_fn = nn.BCEWithLogitsLoss()

        def step():
            model.train()
            if trainable is not None:
                # Frozen layers' batchnorms use running statistics, as in the TF.js model.
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.eval()
                for m in trainable:
                    m.train()
            opt.zero_grad(set_to_none=True)
            with torch.cpu.amp.autocast(enabled=a.precision == "bf16", dtype=torch.bfloat16):
                loss = loss_fn(model(x).float(), y)
            loss.backward()
            opt.step()

    for _ in range(a.warmup):
        step()
    seconds = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t0)
    med = statistics.median(seconds)
    out = {
        "workload": f"{a.arch} {'inference (traced+frozen TorchScript)' if a.kind == 'infer' else 'training step (eager)'}",
        "batch": a.batch,
        "size": a.size,
        "frozenLayers": a.freeze,
        "seconds": seconds,
        "median": med,
        "threads": torch.get_num_threads(),
        "precision": a.precision,
        "torch": torch.__version__,
        "maxRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if a.kind == "infer":
        out["perImage"] = med / a.batch
    print(json.dumps(out))


if __name__ == "__main__":
    main()
