/** Registers every agentctl command; each area adds its module here. */
import type { Command } from 'commander';

export function registerCommands(_program: Command): void {
  // Commands are added by each area: serve, file verbs, agents, tokens, mount, compute, containers.
}
