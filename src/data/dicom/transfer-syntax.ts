/**
 * Transfer syntax UIDs (PS3.5 section 10 / PS3.6 annex A) that neXt-Ray names, reads or decodes, and their names
 * for messages. Browser-safe.
 */

export const TS = {
  implicitLE: '1.2.840.10008.1.2',
  explicitLE: '1.2.840.10008.1.2.1',
  deflatedLE: '1.2.840.10008.1.2.1.99',
  explicitBE: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  jpegLsLossless: '1.2.840.10008.1.2.4.80',
  jpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  jpeg2000: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
  htj2kLossless: '1.2.840.10008.1.2.4.201',
  htj2kLosslessRpcl: '1.2.840.10008.1.2.4.202',
  htj2k: '1.2.840.10008.1.2.4.203',
} as const;

/** The transfer syntaxes read without a codec. */
export const UNCOMPRESSED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  [TS.implicitLE]: 'Implicit VR Little Endian',
  [TS.explicitLE]: 'Explicit VR Little Endian',
  [TS.explicitBE]: 'Explicit VR Big Endian',
  [TS.deflatedLE]: 'Deflated Explicit VR Little Endian',
};

/** Names of the compressed (encapsulated) transfer syntaxes, for messages. */
export const COMPRESSED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  [TS.jpegBaseline]: 'JPEG Baseline (Process 1)',
  [TS.jpegExtended]: 'JPEG Extended (Process 2 & 4)',
  [TS.jpegLossless]: 'JPEG Lossless, Non-Hierarchical (Process 14)',
  [TS.jpegLosslessSV1]: 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  [TS.jpegLsLossless]: 'JPEG-LS Lossless',
  [TS.jpegLsNearLossless]: 'JPEG-LS Lossy (Near-Lossless)',
  [TS.jpeg2000Lossless]: 'JPEG 2000 Image Compression (Lossless Only)',
  [TS.jpeg2000]: 'JPEG 2000 Image Compression',
  [TS.rle]: 'RLE Lossless',
  [TS.htj2kLossless]: 'High-Throughput JPEG 2000 (Lossless Only)',
  [TS.htj2kLosslessRpcl]: 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)',
  [TS.htj2k]: 'High-Throughput JPEG 2000',
};

/** 'uid (name)' when the UID is known, else the UID. */
export function syntaxName(uid: string): string {
  const name = UNCOMPRESSED_TRANSFER_SYNTAXES[uid] ?? COMPRESSED_TRANSFER_SYNTAXES[uid];
  return name ? `${uid} (${name})` : uid;
}
