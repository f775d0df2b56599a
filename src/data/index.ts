/** The data stage's public API: the MURA dataset model, reading and checking datasets, splits, images, loader, synth. */
export * from './types.js';
export * from './paths.js';
export * from './mura.js';
export * from './summary.js';
export * from './splits.js';
export * from './preprocess.js';
export { checkImage, decodeGrey, preprocessImage, MAX_IMAGE_PIXELS, SUPPORTED_FORMATS } from './images.js';
export type { CheckImageResult, GreyImage } from './images.js';
export * from './augment.js';
export * from './loader.js';
export * as synth from './synth/index.js';
/** DICOM: reader, PS3.3 C.11 display pipeline, header gate, codecs (browser-safe; the Node codec loaders in ./dicom/node-codecs.ts). */
export * as dicom from './dicom/index.js';
/** The Node host's DICOM codecs (wasm bytes read from the installed packages). */
export { nodeFrameDecoders, NODE_CODEC_LOADERS } from './dicom/node-codecs.js';
