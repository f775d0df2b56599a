/**
 * The page's DICOM frame decoders: RLE and JPEG lossless (pure JavaScript, always) and the wasm codecs — CharLS
 * (JPEG-LS), libjpeg-turbo (8-bit JPEG baseline) and OpenJPEG (JPEG 2000) — started on first use from files built
 * beside the page (Vite emits them into assets/, so the service worker keeps them for offline use). The same codec
 * list and the same wasm as the Node host (src/data/dicom/codecs), started the way that module describes.
 */
import { dicom } from 'nextray/browser';
import charlsWasm from '@cornerstonejs/codec-charls/decodewasm?url';
import libjpegTurboWasm from '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm?url';
import openJpegWasm from '@cornerstonejs/codec-openjpeg/decodewasm?url';

async function start<M>(factory: () => Promise<{ default: unknown }>, wasmUrl: string): Promise<M> {
  const [mod, bytes] = await Promise.all([factory(), fetch(wasmUrl).then((r) => {
    if (!r.ok) throw new Error(`${wasmUrl}: HTTP ${r.status}`);
    return r.arrayBuffer();
  })]);
  return dicom.loadEmscriptenCodec(mod.default as dicom.EmscriptenFactory<M>, bytes);
}

let decoders: dicom.DicomFrameDecoder[] | null = null;

/** Every decoder the page has (the wasm modules are fetched and started only when a file needs one). */
export function pageDecoders(): dicom.DicomFrameDecoder[] {
  decoders ??= dicom.createFrameDecoders({
    charls: () => start(() => import('@cornerstonejs/codec-charls/decodewasmjs'), charlsWasm),
    libjpegTurbo: () => start(() => import('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'), libjpegTurboWasm),
    openjpeg: () => start(() => import('@cornerstonejs/codec-openjpeg/decodewasmjs'), openJpegWasm),
  });
  return decoders;
}
