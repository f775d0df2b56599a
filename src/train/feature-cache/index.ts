/** The frozen-feature cache (docs/feature-cache.md): the store, its key, extraction, and the trainer's session. */
export { FeatureStore, recordBytesFor, VARIANT_NAMES, type Variant, type OpenReport } from './store.js';
export { FEATURE_CACHE_FORMAT, STORAGE_PRECISIONS, keySetId, makeKeySet, prefixTensorHash, prefixBlocker, configBlocker, hashImageFiles, type KeySet, type StoragePrecision } from './key.js';
export { extractFeatures, checkDiskSpace, EXTRACT_BATCH, type ExtractItem, type ExtractStats } from './extract.js';
export { PREFIX_BATCH, forwardFrozenFixed } from './prefix.js';
export { setUpFeatureCache, defaultCacheRoots, FeatureCacheSession, type FeatureMode } from './session.js';
export { FeatureCacheError, FeatureCacheUsageError } from './errors.js';
