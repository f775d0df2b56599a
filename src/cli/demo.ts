import type { Command } from 'commander';

// Placeholder until the owner of this command writes it.
export function registerDemo(_program: Command): void {}
