/**
 * What a client does with an agent's /compute, over any FileService (the HTTP client, or a namespace in
 * process): run a prompt and stream the answer, list jobs, cancel one. `agentctl compute ...` and the
 * MCP tool `run_model_job` both run jobs through it, so a job runs the same way from either. It only
 * uses the file surface of CONTRACT.md: `new`, `jobs/<id>/{status,stream,result,ctl}`.
 */
import { utf8 } from '../fs/bytes.js';
import { FsError, isErrorCode } from '../fs/errors.js';
import { callFile, readAll, writeAll } from '../fs/ops.js';
import type { Cx, FileService } from '../fs/types.js';

export interface RunOptions {
  model?: string;
  prompt: string;
  system?: string;
  maxTokens?: number;
  temperature?: number;
  maxCost?: number;
  provider?: string;
  idempotencyKey?: string;
  timeoutMs?: number;
  stream?: boolean;
}

export interface Chunk {
  delta: { text: string };
  finish_reason: string | null;
  usage: unknown;
  error?: { code: string; message: string };
}

export interface RunOutcome {
  jobId: string;
  /** The result file (null when the job failed). */
  result: Record<string, unknown> | null;
}

const decoder = new TextDecoder();

export function buildRequest(o: RunOptions): Record<string, unknown> {
  const req: Record<string, unknown> = {};
  if (o.model !== undefined) req['model'] = o.model;
  if (o.system !== undefined) {
    req['messages'] = [
      { role: 'system', content: o.system },
      { role: 'user', content: o.prompt },
    ];
  } else {
    req['prompt'] = o.prompt;
  }
  if (o.maxTokens !== undefined) req['max_tokens'] = o.maxTokens;
  if (o.temperature !== undefined) req['temperature'] = o.temperature;
  if (o.maxCost !== undefined) req['max_cost'] = o.maxCost;
  if (o.provider !== undefined) req['provider'] = o.provider;
  if (o.idempotencyKey !== undefined) req['idempotency_key'] = o.idempotencyKey;
  if (o.timeoutMs !== undefined) req['timeout_ms'] = o.timeoutMs;
  if (o.stream !== undefined) req['stream'] = o.stream;
  return req;
}

/**
 * Submits a prompt, then follows the job's stream file to its end, calling `onChunk` for each chunk
 * as it arrives. A job that fails throws its FsError (code and message from the last chunk).
 */
export async function runPrompt(fs: FileService, base: string, o: RunOptions, cx: Cx, onChunk: (c: Chunk) => void): Promise<RunOutcome> {
  const answer = JSON.parse(utf8(await callFile(fs, `${base}/new`, JSON.stringify(buildRequest(o)), cx))) as { job_id: string };
  const jobId = answer.job_id;
  const streamPath = `${base}/jobs/${jobId}/stream`;
  const handle = await fs.open(streamPath, { read: true }, cx);
  let failure: Chunk['error'];
  try {
    let pending = '';
    for (;;) {
      const bytes = await handle.read(64 * 1024, 0);
      if (bytes.length === 0) break;
      pending += decoder.decode(bytes, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.trim()) continue;
        const chunk = JSON.parse(line) as Chunk;
        if (chunk.error) failure = chunk.error;
        onChunk(chunk);
      }
    }
  } finally {
    await handle.close();
  }
  if (failure) {
    throw new FsError(isErrorCode(failure.code) ? failure.code : 'EIO', `${base}/jobs/${jobId}`, failure.message);
  }
  const result = JSON.parse(utf8(await readAll(fs, `${base}/jobs/${jobId}/result`, cx))) as Record<string, unknown>;
  return { jobId, result };
}

export interface JobLine {
  job_id: string;
  status: string;
  provider: string;
  model: string;
  reserved: number;
  cost: number | null;
  created_at: number;
  error?: { code: string; message: string };
}

/** Every job of the agent with its status, oldest first. */
export async function listJobs(fs: FileService, base: string, cx: Cx): Promise<JobLine[]> {
  const entries = await fs.readdir(`${base}/jobs`, cx);
  const out: JobLine[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    try {
      out.push(JSON.parse(utf8(await readAll(fs, `${base}/jobs/${e.name}/status`, cx))) as JobLine);
    } catch (err) {
      if (!(err instanceof FsError && err.code === 'ENOENT')) throw err; // pruned while listing
    }
  }
  return out;
}

export async function cancelJob(fs: FileService, base: string, id: string, cx: Cx): Promise<JobLine> {
  await writeAll(fs, `${base}/jobs/${id}/ctl`, 'cancel', cx, { append: true });
  return JSON.parse(utf8(await readAll(fs, `${base}/jobs/${id}/status`, cx))) as JobLine;
}

/**
 * Where the agent's /compute is: `/agents/<agent>/compute` when an agent is named; `/compute` when the
 * server shows one agent's namespace at its root (an agent-scoped token); else the only agent's.
 */
export async function computeBase(fs: FileService, agent: string | undefined, cx: Cx): Promise<string> {
  if (agent) return `/agents/${agent}/compute`;
  const top = await fs.readdir('/', cx);
  if (top.some((e) => e.name === 'compute')) return '/compute';
  if (top.some((e) => e.name === 'agents')) {
    const agents = (await fs.readdir('/agents', cx)).filter((e) => e.stat.type === 'dir');
    if (agents.length === 1) return `/agents/${agents[0]!.name}/compute`;
    throw new FsError(
      'EINVAL',
      '/agents',
      agents.length === 0 ? 'no agents on this server: create one first' : `name an agent with --agent (agents: ${agents.map((a) => a.name).join(', ')})`,
    );
  }
  throw new FsError('ENOENT', '/compute', 'this server has no /compute');
}
