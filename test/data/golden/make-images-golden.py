#!/usr/bin/python3
"""Golden values for test/data/images-preprocess.test.ts, computed independently of neXt-Ray with PIL and numpy.

Run with Debian's Python (PIL 9.4, numpy 1.24):  /usr/bin/python3 test/data/golden/make-images-golden.py
Writes test/data/golden/images-golden.json next to this script.

- resize: PIL Image.resize(BILINEAR) on mode 'F' (float32) images — the antialiased triangle filter torchvision's
  Resize uses on PIL images — for a downscale by 2.56 (like MURA 512 -> 200), a mild downscale (512 -> 320 ratio),
  an upscale and a mixed one.
- pipeline: a 8-bit grey gradient PNG (pixels defined below, identical to the test's), letterboxed ('pad') into
  a 16 x 16 input and ImageNet-normalised, computed step by step with PIL + numpy; stored as HWC float32.
"""
import json, os
import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float64)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float64)

def src(w, h):
    # Same definition as in the test: v(x, y) = ((x * 37 + y * 91) % 256) / 255
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 37 + y * 91) % 256).astype(np.uint8)

def pil_resize(a_float32, w, h):
    return np.asarray(Image.fromarray(a_float32, mode='F').resize((w, h), Image.BILINEAR), dtype=np.float32)

out = {'resize': []}
for (sw, sh, dw, dh) in [(64, 40, 25, 16), (40, 24, 25, 15), (7, 5, 16, 12), (30, 9, 12, 20)]:
    a = (src(sw, sh).astype(np.float32) / np.float32(255))
    r = pil_resize(a, dw, dh)
    out['resize'].append({'src': [sw, sh], 'dst': [dw, dh], 'values': [float(v) for v in r.ravel()]})

# Pipeline: 24 x 15 gradient, pad into 16 x 16. scale = min(16/24, 16/15) = 2/3 -> 16 x 10, bars of 3 rows
# at top and bottom: rows 0-2 and 13-15 are background (grey 0).
sw, sh, size = 24, 15, 16
grey = src(sw, sh).astype(np.float32) / np.float32(255)
r = pil_resize(grey, 16, 10)
canvas = np.zeros((size, size), dtype=np.float32)
canvas[3:13, :] = r
hwc = ((canvas[:, :, None].astype(np.float64) - MEAN) / STD).astype(np.float32)
out['pipeline'] = {'src': [sw, sh], 'size': size, 'resize': 'pad', 'hwc': [float(v) for v in hwc.ravel()],
                   'mean_per_channel': [float(hwc[:, :, c].mean()) for c in range(3)],
                   'std_per_channel': [float(hwc[:, :, c].std()) for c in range(3)]}
# Same image stretched to 16 x 16.
r2 = pil_resize(grey, 16, 16)
hwc2 = ((r2[:, :, None].astype(np.float64) - MEAN) / STD).astype(np.float32)
out['pipeline_stretch'] = {'hwc': [float(v) for v in hwc2.ravel()]}

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'images-golden.json'), 'w') as f:
    json.dump(out, f)
    f.write('\n')
print('ok')
