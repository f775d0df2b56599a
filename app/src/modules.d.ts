/** Vite's `?url` imports: the emitted file's URL. */
declare module '*?url' {
  const url: string;
  export default url;
}
/** The codec packages' Emscripten factories (CommonJS, default export). */
declare module '@cornerstonejs/codec-charls/decodewasmjs' {
  const factory: unknown;
  export default factory;
}
declare module '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs' {
  const factory: unknown;
  export default factory;
}
declare module '@cornerstonejs/codec-openjpeg/decodewasmjs' {
  const factory: unknown;
  export default factory;
}
