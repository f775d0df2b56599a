/**
 * The image viewer: one radiograph on a canvas with window/level (drag or presets), zoom and pan, and the heatmap as
 * a separate layer above it (its own canvas, so the slider's opacity and the on/off toggle never touch the picture).
 * Modelled on what OHIF users expect: left-drag changes window/level (horizontal: width, vertical: level), the wheel
 * zooms, shift-drag (or the pan mode) pans, and every action has a key.
 *
 * Window/level works on the display grey values in [0, 1] (for DICOM: after the file's own VOI window, so "Default"
 * is the picture as its modality meant it): out = (grey - (centre - width / 2)) / width, clamped, then inverted if
 * asked.
 */
import { inference, type preprocessing } from 'nextray/browser';

type Preprocessing = preprocessing.Preprocessing;

export interface WindowLevel {
  centre: number;
  width: number;
  invert: boolean;
}

export interface Preset {
  key: string;
  label: string;
  centre: number;
  width: number;
}

/** Presets in display-grey units (fractions of the full range). 'Auto' is computed per image (1st-99th percentile). */
export const PRESETS: Preset[] = [
  { key: '1', label: 'Default', centre: 0.5, width: 1 },
  { key: '2', label: 'Bone', centre: 0.65, width: 0.5 },
  { key: '3', label: 'Soft tissue', centre: 0.3, width: 0.5 },
  { key: '4', label: 'Auto', centre: NaN, width: NaN },
];

/**
 * Map values below this fraction of the view's strongest region are not tinted: the picture stays as it is
 * wherever the model found little, which keeps bone readable under the map.
 */
export const HEATMAP_FLOOR = 0.4;
/** Default heatmap opacity (%): bone edges stay visible through the strongest colour. */
export const DEFAULT_OPACITY = 35;

/** Longest side of the picture kept for display (larger images are reduced once, for speed). */
const MAX_DISPLAY_SIDE = 2048;

export interface ViewerImage {
  grey: Float32Array;
  width: number;
  height: number;
}

/** 1st and 99th percentiles of grey values (a 256-bin histogram), as a window. */
export function autoWindow(grey: Float32Array): { centre: number; width: number } {
  const bins = new Uint32Array(256);
  for (let i = 0; i < grey.length; i++) bins[Math.max(0, Math.min(255, Math.floor(grey[i]! * 256)))]!++;
  const lo = 0.01 * grey.length;
  const hi = 0.99 * grey.length;
  let acc = 0;
  let a = 0;
  let b = 255;
  for (let i = 0; i < 256; i++) {
    const next = acc + bins[i]!;
    if (acc <= lo && next > lo) a = i;
    if (acc <= hi && next > hi) {
      b = i;
      break;
    }
    acc = next;
  }
  const low = a / 256;
  const high = Math.max((b + 1) / 256, low + 1 / 256);
  return { centre: (low + high) / 2, width: high - low };
}

/** Reduces a grey image so its longer side is at most `max` (box average). */
function reduce(img: ViewerImage, max: number): ViewerImage {
  const f = Math.ceil(Math.max(img.width, img.height) / max);
  if (f <= 1) return img;
  const w = Math.floor(img.width / f);
  const h = Math.floor(img.height / f);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) s += img.grey[(y * f + dy) * img.width + x * f + dx]!;
      out[y * w + x] = s / (f * f);
    }
  }
  return { grey: out, width: w, height: h };
}

/**
 * RGBA of the heatmap layer at w x h: viridis where the map is at least HEATMAP_FLOOR of its maximum (opaque), clear
 * elsewhere; the layer's opacity is the canvas's.
 */
export function heatmapLayer(map: Float32Array, h: number, w: number, width: number, height: number, pre: Pick<Preprocessing, 'size' | 'resize'>): Uint8ClampedArray<ArrayBuffer> {
  const m = inference.camOnImage(map, h, w, width, height, pre);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < m.length; i++) {
    if (!(m[i]! >= HEATMAP_FLOOR)) continue;
    const [r, g, b] = inference.colourAt(m[i]!);
    out[4 * i] = r;
    out[4 * i + 1] = g;
    out[4 * i + 2] = b;
    out[4 * i + 3] = 255;
  }
  return out;
}

export class Viewer {
  private img: ViewerImage | null = null;
  private source: OffscreenCanvas | null = null;
  private heat: OffscreenCanvas | null = null;
  wl: WindowLevel = { centre: 0.5, width: 1, invert: false };
  zoom = 1;
  panX = 0;
  panY = 0;
  /** CSS pixels of the canvases (the picture fitted at zoom 1). */
  cssWidth = 0;
  cssHeight = 0;
  onChange: () => void = () => {};

  constructor(
    readonly canvas: HTMLCanvasElement,
    readonly heatCanvas: HTMLCanvasElement,
  ) {}

  /** Shows a picture fitted into maxWidth x maxHeight CSS pixels; resets zoom, pan and window/level. */
  show(image: ViewerImage, maxWidth: number, maxHeight: number): void {
    this.img = reduce(image, MAX_DISPLAY_SIDE);
    const scale = Math.min(maxWidth / image.width, maxHeight / image.height);
    this.cssWidth = Math.max(1, Math.round(image.width * scale));
    this.cssHeight = Math.max(1, Math.round(image.height * scale));
    const dpr = Math.max(1, Math.min(3, self.devicePixelRatio || 1));
    for (const c of [this.canvas, this.heatCanvas]) {
      c.width = Math.round(this.cssWidth * dpr);
      c.height = Math.round(this.cssHeight * dpr);
      c.style.width = `${this.cssWidth}px`;
      c.style.height = `${this.cssHeight}px`;
    }
    this.zoom = 1;
    this.panX = this.panY = 0;
    this.wl = { centre: 0.5, width: 1, invert: false };
    this.heat = null;
    this.renderSource();
    this.draw();
  }

  /** Sets (or clears, with null) the heatmap layer from a model's CAM; computed at the canvas's pixel size. */
  setHeatmap(cam: { map: Float32Array; h: number; w: number } | null, pre: Pick<Preprocessing, 'size' | 'resize'>): void {
    if (!cam) {
      this.heat = null;
      this.heatCanvas.dataset.drawn = 'false';
      this.draw();
      return;
    }
    const w = this.heatCanvas.width;
    const h = this.heatCanvas.height;
    const px = heatmapLayer(cam.map, cam.h, cam.w, w, h, pre);
    this.heat = new OffscreenCanvas(w, h);
    this.heat.getContext('2d')!.putImageData(new ImageData(px, w, h), 0, 0);
    this.heatCanvas.dataset.drawn = 'true';
    this.draw();
  }

  setWindow(centre: number, width: number): void {
    this.wl = { ...this.wl, centre: Math.max(-0.5, Math.min(1.5, centre)), width: Math.max(1 / 256, Math.min(2, width)) };
    this.renderSource();
    this.draw();
  }

  preset(p: Preset): void {
    if (!this.img) return;
    if (Number.isNaN(p.centre)) {
      const a = autoWindow(this.img.grey);
      this.setWindow(a.centre, a.width);
    } else this.setWindow(p.centre, p.width);
  }

  toggleInvert(): void {
    this.wl = { ...this.wl, invert: !this.wl.invert };
    this.renderSource();
    this.draw();
  }

  zoomBy(f: number, cx = this.cssWidth / 2, cy = this.cssHeight / 2): void {
    const z = Math.max(1, Math.min(8, this.zoom * f));
    // Keep the point under (cx, cy) where it is.
    const k = z / this.zoom;
    this.panX = cx - k * (cx - this.panX);
    this.panY = cy - k * (cy - this.panY);
    this.zoom = z;
    this.clampPan();
    this.draw();
  }

  panBy(dx: number, dy: number): void {
    this.panX += dx;
    this.panY += dy;
    this.clampPan();
    this.draw();
  }

  reset(): void {
    this.zoom = 1;
    this.panX = this.panY = 0;
    this.wl = { centre: 0.5, width: 1, invert: false };
    this.renderSource();
    this.draw();
  }

  private clampPan(): void {
    const minX = this.cssWidth * (1 - this.zoom);
    const minY = this.cssHeight * (1 - this.zoom);
    this.panX = Math.max(minX, Math.min(0, this.panX));
    this.panY = Math.max(minY, Math.min(0, this.panY));
  }

  /** The picture after window/level at its own (display) resolution. */
  private renderSource(): void {
    const img = this.img;
    if (!img) return;
    if (!this.source || this.source.width !== img.width || this.source.height !== img.height) this.source = new OffscreenCanvas(img.width, img.height);
    const ctx = this.source.getContext('2d')!;
    const data = new ImageData(img.width, img.height);
    const px = data.data;
    const lo = this.wl.centre - this.wl.width / 2;
    const inv = 1 / this.wl.width;
    const invert = this.wl.invert;
    for (let i = 0; i < img.grey.length; i++) {
      let v = (img.grey[i]! - lo) * inv;
      v = v < 0 ? 0 : v > 1 ? 1 : v;
      if (invert) v = 1 - v;
      const b = Math.round(v * 255);
      px[4 * i] = px[4 * i + 1] = px[4 * i + 2] = b;
      px[4 * i + 3] = 255;
    }
    ctx.putImageData(data, 0, 0);
  }

  draw(): void {
    const img = this.img;
    if (!img || !this.source) return;
    const dpr = this.canvas.width / this.cssWidth;
    const ctx = this.canvas.getContext('2d', { willReadFrequently: true })!;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr * this.zoom, 0, 0, dpr * this.zoom, dpr * this.panX, dpr * this.panY);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(this.source, 0, 0, this.cssWidth, this.cssHeight);
    const hctx = this.heatCanvas.getContext('2d', { willReadFrequently: true })!;
    hctx.setTransform(1, 0, 0, 1, 0, 0);
    hctx.clearRect(0, 0, this.heatCanvas.width, this.heatCanvas.height);
    if (this.heat) {
      hctx.setTransform(this.zoom, 0, 0, this.zoom, dpr * this.panX, dpr * this.panY);
      hctx.imageSmoothingEnabled = this.zoom !== 1;
      hctx.drawImage(this.heat, 0, 0);
    }
    this.onChange();
  }
}
