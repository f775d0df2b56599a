import type { Command } from 'commander';

// Placeholder until the owner of this command writes it.
export function registerSweep(_program: Command): void {}
