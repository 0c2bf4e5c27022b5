/** Registers every agentctl command; each area adds its module here. */
import type { Command } from 'commander';
import { registerFileCommands } from './files.js';
import { registerTokenCommands } from './tokens.js';

export function registerCommands(program: Command): void {
  registerFileCommands(program);
  registerTokenCommands(program);
}
