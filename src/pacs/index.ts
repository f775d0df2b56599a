/**
 * Results into the hospital's workflow (browser-safe part): the DICOM writer, the result UIDs and the study SR.
 * The Node side (files, and later the PACS worker) builds on these: bytes in, bytes out.
 */
export * from './dicom-writer.js';
export * from './uid.js';
export * from './sr.js';
