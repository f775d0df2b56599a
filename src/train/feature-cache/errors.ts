/** The feature cache's errors: one for things that went wrong (exit 1), one for configurations it refuses (exit 2). */
import { EXIT_FAILURE, EXIT_USAGE, NextrayError, type NextrayErrorOptions } from '../../util/errors.js';

/** The cache could not do its job: disk full, not enough free space, an unreadable folder (exit status 1). */
export class FeatureCacheError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_FEATURE_CACHE', exitStatus: EXIT_FAILURE, ...opts });
    this.name = 'FeatureCacheError';
  }
}

/** `--feature-cache DIR` given for a configuration whose frozen prefix cannot be cached exactly (exit status 2). */
export class FeatureCacheUsageError extends NextrayError {
  constructor(message: string, opts: NextrayErrorOptions = {}) {
    super(message, { code: 'ERR_FEATURE_CACHE_USAGE', exitStatus: EXIT_USAGE, ...opts });
    this.name = 'FeatureCacheUsageError';
  }
}
