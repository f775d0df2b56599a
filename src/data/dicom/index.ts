/**
 * DICOM in neXt-Ray, browser-safe: the reader (parse, header, frames, display pipeline), the header gate and the
 * codecs. The Node host's codec loaders are in ./node-codecs.ts (not re-exported here: it reads files).
 */
export * from './display.js';
export * from './transfer-syntax.js';
export * from './header.js';
export * from './gate.js';
export * from './reader.js';
export * from './codecs/index.js';
