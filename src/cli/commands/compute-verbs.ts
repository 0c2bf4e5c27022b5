/**
 * `agentctl compute run|jobs|cancel`: model jobs through the agent's /compute files over the HTTP client.
 * `run` submits a prompt and streams the answer to stdout as it arrives (cost and job id on stderr).
 */
import type { Command } from 'commander';
import { FsError } from '../../fs/errors.js';
import { cancelJob, computeBase, listJobs, runPrompt, type JobLine, type RunOptions } from '../../mcp/compute-client.js';
import { action, commandOf, contextOf, readStdin, usage } from '../context.js';
import { c, printJson, table, timeString, write } from '../output.js';

function intOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new FsError('EINVAL', '/', `${name} must be a non-negative integer (got '${value}')`);
    return n;
  };
}

interface RunFlags {
  model?: string;
  agent?: string;
  system?: string;
  maxTokens?: number;
  temperature?: string;
  maxCost?: number;
  provider?: string;
  idempotencyKey?: string;
  timeout?: number;
  stream: boolean;
}

export function registerComputeCommands(program: Command): void {
  const compute = program.command('compute').description("model jobs through an agent's /compute files");
  const agentOption = "the agent whose /compute to use (env AGENT9_AGENT; default: the token's agent, or the only agent)";

  compute
    .command('run')
    .description('run a prompt and stream the answer (the prompt from the arguments, else stdin)')
    .argument('[prompt...]', 'the prompt')
    .option('-m, --model <model>', 'the model (default: the policy default_model)')
    .option('--agent <id>', agentOption)
    .option('--system <text>', 'a system message before the prompt')
    .option('--max-tokens <n>', 'cap on output tokens', intOption('--max-tokens'))
    .option('--temperature <t>', 'sampling temperature (0-2)')
    .option('--max-cost <micro-usd>', 'the most this job may cost (reserved), micro-USD', intOption('--max-cost'))
    .option('--provider <id>', 'pin a provider')
    .option('--idempotency-key <key>', 'the same key returns the same job')
    .option('--timeout <ms>', 'job timeout in ms', intOption('--timeout'))
    .option('--no-stream', 'ask the provider for the whole answer at once')
    .action(
      action(async (words: string[], flags: RunFlags, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const prompt = words.length > 0 ? words.join(' ') : new TextDecoder().decode(await readStdin()).replace(/\n$/, '');
        if (!prompt) throw usage('give a prompt: agentctl compute run --model M "prompt" (or on stdin)');
        const o: RunOptions = { prompt, stream: flags.stream };
        if (flags.model !== undefined) o.model = flags.model;
        if (flags.system !== undefined) o.system = flags.system;
        if (flags.maxTokens !== undefined) o.maxTokens = flags.maxTokens;
        if (flags.temperature !== undefined) {
          const t = Number(flags.temperature);
          if (!Number.isFinite(t)) throw usage(`--temperature must be a number (got '${flags.temperature}')`);
          o.temperature = t;
        }
        if (flags.maxCost !== undefined) o.maxCost = flags.maxCost;
        if (flags.provider !== undefined) o.provider = flags.provider;
        if (flags.idempotencyKey !== undefined) o.idempotencyKey = flags.idempotencyKey;
        if (flags.timeout !== undefined) o.timeoutMs = flags.timeout;
        const base = await computeBase(ctx.client, flags.agent ?? process.env['AGENT9_AGENT'], ctx.cx);
        let endsWithNewline = true;
        const out = await runPrompt(ctx.client, base, o, ctx.cx, (chunk) => {
          if (ctx.json) {
            process.stdout.write(JSON.stringify(chunk) + '\n');
          } else if (chunk.delta.text) {
            write(chunk.delta.text);
            endsWithNewline = chunk.delta.text.endsWith('\n');
          }
        });
        if (ctx.json) return printJson(out.result);
        if (!endsWithNewline) write('\n');
        const r = out.result as { cost?: number; provider?: string; model?: string; usage?: { total_tokens?: number } | null };
        process.stderr.write(
          c.dim(`job ${out.jobId}  ${r.provider}/${r.model}  ${r.usage?.total_tokens ?? '?'} tokens  cost ${r.cost} micro-USD\n`, process.stderr),
        );
      }),
    );

  compute
    .command('jobs')
    .description("list the agent's jobs with their status and cost")
    .option('--agent <id>', agentOption)
    .action(
      action(async (flags: { agent?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const base = await computeBase(ctx.client, flags.agent ?? process.env['AGENT9_AGENT'], ctx.cx);
        const jobs = await listJobs(ctx.client, base, ctx.cx);
        if (ctx.json) return printJson(jobs);
        write(
          table<JobLine>(jobs, [
            { header: 'JOB', value: (j) => j.job_id },
            { header: 'STATUS', value: (j) => (j.error ? `${j.status} (${j.error.code})` : j.status) },
            { header: 'PROVIDER', value: (j) => j.provider },
            { header: 'MODEL', value: (j) => j.model },
            { header: 'RESERVED', value: (j) => String(j.reserved), align: 'right' },
            { header: 'COST', value: (j) => (j.cost === null ? '-' : String(j.cost)), align: 'right' },
            { header: 'CREATED', value: (j) => timeString(j.created_at) },
          ]),
        );
      }),
    );

  compute
    .command('cancel')
    .description('cancel a job (its reservation is released)')
    .argument('<job>', 'the job id')
    .option('--agent <id>', agentOption)
    .action(
      action(async (id: string, flags: { agent?: string }, ...rest: unknown[]) => {
        const ctx = contextOf(commandOf(rest));
        const base = await computeBase(ctx.client, flags.agent ?? process.env['AGENT9_AGENT'], ctx.cx);
        const job = await cancelJob(ctx.client, base, id, ctx.cx);
        if (ctx.json) return printJson(job);
        write(`${job.job_id} ${job.status}\n`);
      }),
    );
}
