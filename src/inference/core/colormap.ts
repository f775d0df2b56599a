/**
 * Perceptual colour maps for heatmaps, and blending a map over a greyscale radiograph into RGBA pixels. Browser-safe
 * (no Node imports): the web app and the Node host draw the same overlay.
 *
 * Viridis (van der Walt & Smith, matplotlib's default since 2.0; the data is CC0) is perceptually uniform and
 * readable in greyscale and by the colour-blind, unlike the jet/rainbow maps Grad-CAM figures often use, which
 * invent edges where the map is smooth. The table is matplotlib's 256 entries as 8-bit sRGB.
 */

const VIRIDIS_HEX =
  '44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467481668481769' +
  '48186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a' +
  '472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f85' +
  '4240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b' +
  '3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d' +
  '33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e' +
  '2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e' +
  '26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d' +
  '21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f88' +
  '1fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad81' +
  '28ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc74' +
  '3fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc863' +
  '5ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d' +
  '84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32' +
  'addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21a' +
  'd8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725';

function decode(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** 256 RGB triples, [r0, g0, b0, r1, ...]. */
export const VIRIDIS: Uint8Array = decode(VIRIDIS_HEX);

/** The colour of value t in [0, 1] (clamped; NaN counts as 0): entry floor(t * 255.999) of the table. */
export function colourAt(t: number, table: Uint8Array = VIRIDIS): [number, number, number] {
  const n = table.length / 3;
  const v = t > 0 ? (t < 1 ? t : 1) : 0;
  const i = Math.min(n - 1, Math.floor(v * n));
  return [table[3 * i]!, table[3 * i + 1]!, table[3 * i + 2]!];
}

export interface OverlayOptions {
  /** Weight of the colour map at full heat (default 0.5). */
  alpha?: number;
  /** Map values below this show the grey image only (default 0: the whole image is tinted). */
  floor?: number;
  table?: Uint8Array;
}

/**
 * RGBA pixels (row-major, 4 bytes each) of `map` (values in [0, 1], one per pixel) in the colour map, blended over
 * the grey image (values in [0, 1]): rgb = (1 - a) * grey + a * colour(map), a = alpha where map >= floor, else 0.
 */
export function overlayHeatmap(grey: Float32Array, map: Float32Array, width: number, height: number, opts: OverlayOptions = {}): Uint8ClampedArray {
  const n = width * height;
  if (grey.length !== n || map.length !== n) throw new RangeError(`overlayHeatmap: ${grey.length} grey and ${map.length} map values for ${width} x ${height}`);
  const alpha = opts.alpha ?? 0.5;
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be in [0, 1], got ${alpha}`);
  const floor = opts.floor ?? 0;
  const table = opts.table ?? VIRIDIS;
  const out = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    const g = 255 * (grey[i]! > 0 ? (grey[i]! < 1 ? grey[i]! : 1) : 0);
    const m = map[i]!;
    const a = m >= floor ? alpha : 0;
    const [r, gg, b] = colourAt(m, table);
    out[4 * i] = Math.round((1 - a) * g + a * r);
    out[4 * i + 1] = Math.round((1 - a) * g + a * gg);
    out[4 * i + 2] = Math.round((1 - a) * g + a * b);
    out[4 * i + 3] = 255;
  }
  return out;
}
