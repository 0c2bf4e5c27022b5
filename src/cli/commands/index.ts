/** Registers every agentctl command; each area adds its module here. */
import type { Command } from 'commander';
import { registerServeCommand } from './serve-verb.js';
import { registerFileCommands } from './file-verbs.js';
import { registerAgentCommands } from './agent-verbs.js';
import { registerLogCommands } from './log-verbs.js';
import { registerTokenCommands } from './token-verbs.js';
import { registerMountCommand } from './mount-verb.js';
import { registerComputeCommands } from './compute-verbs.js';
import { registerContainerCommands } from './container-verbs.js';
import { registerMcpCommand } from './mcp-verb.js';

export function registerCommands(program: Command): void {
  registerServeCommand(program);
  registerFileCommands(program);
  registerAgentCommands(program);
  registerLogCommands(program);
  registerTokenCommands(program);
  registerMountCommand(program);
  registerComputeCommands(program);
  registerContainerCommands(program);
  registerMcpCommand(program);
}
