#!/usr/bin/env node
/** agentctl: one binary for the server and every client verb. Each command lives in src/cli/commands. */
import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('agentctl')
    .description('agent9: a Plan-9-style filesystem server for AI agents')
    .option('--endpoint <url>', 'server URL (env AGENT9_URL, default http://127.0.0.1:7070)')
    .option('--token <token>', 'bearer token (env AGENT9_TOKEN, default: the admin token of this machine)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError();
  registerCommands(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`agentctl: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  });
