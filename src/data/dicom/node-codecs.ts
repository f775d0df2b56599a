/**
 * The Node host's codec loaders: each cornerstone wasm codec's Emscripten factory by `require` and its wasm binary
 * read from the installed package, then started by the same `loadEmscriptenCodec` the page uses (see
 * ./codecs/wasm.ts). Node-only (node:module, node:fs).
 */
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { createFrameDecoders, loadEmscriptenCodec, type CodecModuleLoaders, type EmscriptenFactory } from './codecs/index.js';
import type { DicomFrameDecoder } from './codecs/types.js';

const require = createRequire(import.meta.url);

function fromPackage<M>(pkg: string): () => Promise<M> {
  return async () => {
    const factory = require(`${pkg}/decodewasmjs`) as EmscriptenFactory<M>;
    return loadEmscriptenCodec(factory, await readFile(require.resolve(`${pkg}/decodewasm`)));
  };
}

export const NODE_CODEC_LOADERS: CodecModuleLoaders = {
  charls: fromPackage('@cornerstonejs/codec-charls'),
  libjpegTurbo: fromPackage('@cornerstonejs/codec-libjpeg-turbo-8bit'),
  openjpeg: fromPackage('@cornerstonejs/codec-openjpeg'),
};

/** Every frame decoder, for Node (each wasm module starts on first use). */
export const nodeFrameDecoders: readonly DicomFrameDecoder[] = createFrameDecoders(NODE_CODEC_LOADERS);
