#!/usr/bin/env node
// Removes the compiled TypeScript (dist/src, dist/test, dist/bench) before a build, so a module or test that was
// moved or deleted in src/ or test/ leaves no stale copy behind for the test runner to pick up. dist/app (Vite's
// output) and the native addon (native/build) are left alone.
import { rmSync } from 'node:fs';

for (const dir of ['dist/src', 'dist/test', 'dist/bench']) rmSync(dir, { recursive: true, force: true });
