#!/usr/bin/python3
"""PyTorch side of bench/predict.mjs: what `nextray predict --model resnet152.onnx one.png` is compared with.

  save PATH             write a seeded ResNet-152 with the MURA binary head (fc = Linear(2048, 1)) as a state_dict
  predict PATH IMAGE    the whole job, timed by the caller as one process: import torch and torchvision, build
                        the network, load the state_dict, read the PNG, resize to 320x320, normalise, one forward
                        pass (eval, no_grad, 2 threads), print P(abnormal)

Run with Debian's /usr/bin/python3 (PyTorch 1.13 + torchvision).
"""
import sys

import torch
import torch.nn as nn
import torchvision
from PIL import Image


def build() -> nn.Module:
    model = torchvision.models.resnet152(weights=None)
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model


def main() -> None:
    torch.set_num_threads(2)
    if sys.argv[1] == "save":
        torch.manual_seed(0)
        torch.save(build().state_dict(), sys.argv[2])
        return
    model = build()
    model.load_state_dict(torch.load(sys.argv[2]))
    model.eval()
    img = Image.open(sys.argv[3]).convert("RGB").resize((320, 320), Image.BILINEAR)
    t = torchvision.transforms.functional.to_tensor(img)
    t = torchvision.transforms.functional.normalize(t, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        p = torch.sigmoid(model(t.unsqueeze(0)))[0, 0].item()
    print(p)


if __name__ == "__main__":
    main()
