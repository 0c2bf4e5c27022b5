#!/usr/bin/env node
/** agentctl: one binary for the server and every client verb. Each command lives in src/cli/commands. */
import { Command, CommanderError } from 'commander';
import { ERROR_TABLE } from '../fs/errors.js';
import { registerCommands } from './commands/index.js';
import { fail } from './context.js';

export function buildProgram(): Command {
  const program = new Command('agentctl')
    .description('agent9: a Plan-9-style filesystem server for AI agents')
    .option('--endpoint <url>', 'server URL (env AGENT9_URL, default: the local server, else http://127.0.0.1:7070)')
    .option('--token <token>', 'bearer token (env AGENT9_TOKEN, default: the admin token of this machine)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError()
    .exitOverride();
  registerCommands(program);
  return program;
}

// `agentctl cat big | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; a usage error (already printed by commander) is EINVAL.
      process.exit(err.exitCode === 0 ? 0 : ERROR_TABLE.EINVAL.exit);
    }
    fail(err);
  });
