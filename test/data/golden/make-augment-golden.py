#!/usr/bin/python3
"""Golden values for test/data/augment.test.ts, computed with torchvision (independent of neXt-Ray).

Run with Debian's Python (PyTorch 1.13, torchvision):  /usr/bin/python3 test/data/golden/make-augment-golden.py
torchvision.transforms.functional.rotate(bilinear, fill=None): rotation about the image centre, counter-clockwise
for positive angles, samples outside the image read 0 (grid_sample zero padding).
"""
import json, os
import numpy as np
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

def src(w, h):
    # Same definition as in the test: v(x, y) = ((x * 37 + y * 91) % 256) / 255
    y, x = np.mgrid[0:h, 0:w]
    return (((x * 37 + y * 91) % 256) / 255.0).astype(np.float32)

out = {'rotate': []}
for (w, h, angle) in [(9, 9, 30.0), (12, 7, -17.5), (8, 10, 90.0)]:
    a = torch.from_numpy(src(w, h))[None]  # 1 x H x W
    r = TF.rotate(a, angle, interpolation=InterpolationMode.BILINEAR)
    out['rotate'].append({'w': w, 'h': h, 'angle': angle, 'values': [float(v) for v in r[0].numpy().ravel()]})
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'augment-golden.json'), 'w') as f:
    json.dump(out, f)
    f.write('\n')
print('ok')
