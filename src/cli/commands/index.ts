/** Registers every agentctl command; each area adds its module here. */
import type { Command } from 'commander';
import { registerServeCommand } from './serve.js';
import { registerFileCommands } from './files.js';
import { registerAgentCommands } from './agents.js';
import { registerLogCommands } from './logs.js';
import { registerTokenCommands } from './tokens.js';
import { registerMountCommand } from './mount.js';
import { registerComputeCommands } from './compute.js';
import { registerContainerCommands } from './containers.js';

export function registerCommands(program: Command): void {
  registerServeCommand(program);
  registerFileCommands(program);
  registerAgentCommands(program);
  registerLogCommands(program);
  registerTokenCommands(program);
  registerMountCommand(program);
  registerComputeCommands(program);
  registerContainerCommands(program);
}
