import type { Command } from 'commander';

// Placeholder until the owner of this command writes it.
export function registerEvaluate(_program: Command): void {}
