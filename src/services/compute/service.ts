/**
 * One agent's /compute as files, built from SyntheticFs nodes over the shared ComputeEngine:
 *
 *   new                         call: request JSON -> {job_id, status, paths}
 *   jobs/                       one directory per job of this agent
 *   jobs/<id>/status            view: state, times, reserved and charged cost, error
 *   jobs/<id>/result            view: the response; EAGAIN "not ready" while it runs; the failure's code after
 *   jobs/<id>/stream            stream: one JSON chunk per line from the job's beginning, EOF at its end
 *   jobs/<id>/ctl               message: cancel
 *   providers/<id>/{info,models,health}
 *   policy                      view, writable (admin-write where mounted)
 *   usage                       view: budget windows (agent, compute caps, scopes), job counts and providers' overruns
 */
import { jsonText, utf8 } from '../../fs/bytes.js';
import { FsError } from '../../fs/errors.js';
import type { FsEvent, FileService } from '../../fs/types.js';
import { SyntheticFs, call, completeJsonObject, dir, jsonView, message, parseJson, stream, type DirNode, type Node } from '../../fs/synthetic.js';
import type { ComputeEngine } from './engine.js';
import { jobResult, jobStatus } from './jobs.js';
import { TERMINAL, type ComputeChunk } from './types.js';

export interface ComputeServiceOptions {
  engine: ComputeEngine;
  agentId: string;
}

/** The FileService an agent's namespace mounts at /compute (policy admin-write: `adminWrite: ['/policy']`). */
export function createComputeService({ engine, agentId }: ComputeServiceOptions): FileService {
  engine.applyCaps(agentId);
  const root = dir({
    // Sent by the write that completes the JSON object: `echo '{...}' > new` then reports a refusal.
    new: call(async (request) => jsonText(await engine.submit(agentId, request, '/new')), { complete: completeJsonObject }),
    jobs: jobsDir(engine, agentId),
    providers: providersDir(engine),
    policy: jsonView(() => engine.policy(agentId), {
      write: (data) => {
        engine.setPolicy(agentId, parseJson(data, '/policy'), '/policy');
      },
      version: () => engine.policies.get(agentId).version,
      mtime: () => engine.policies.get(agentId).updatedAt || Date.now(),
    }),
    usage: jsonView(() => engine.usage(agentId)),
  });
  return new SyntheticFs(root, 'compute');
}

function jobsDir(engine: ComputeEngine, agentId: string): DirNode {
  return {
    kind: 'dir',
    dynamic: {
      list: () => engine.jobs.ids(agentId),
      get: (id) => {
        const stamp = engine.jobs.stamp(agentId, id);
        return stamp === undefined ? undefined : jobDir(engine, agentId, id, stamp.updatedAt);
      },
    },
  };
}

function jobDir(engine: ComputeEngine, agentId: string, id: string, mtime: number): DirNode {
  const fresh = (path: string) => {
    const job = engine.job(agentId, id);
    if (!job) throw new FsError('ENOENT', path, `no job ${id}`);
    return job;
  };
  const base = `/jobs/${id}`;
  const meta = () => ({
    version: () => engine.jobs.stamp(agentId, id)?.version ?? 0,
    mtime: () => engine.jobs.stamp(agentId, id)?.updatedAt ?? mtime,
  });
  const children: Record<string, Node> = {
    status: jsonView(() => jobStatus(fresh(`${base}/status`)), meta()),
    result: jsonView(() => jobResult(fresh(`${base}/result`), `${base}/result`), meta()),
    stream: stream((_cx, signal) => jobStream(engine, agentId, id, signal), { mtime: () => mtime }),
    ctl: message(async (data) => {
      const command = utf8(data).trim();
      if (command !== 'cancel') {
        throw new FsError('EINVAL', `${base}/ctl`, `unknown command '${command.slice(0, 40)}' (commands: cancel)`);
      }
      await engine.cancel(agentId, id, `${base}/ctl`);
    }),
  };
  return dir(children, { mtime: () => mtime });
}

/**
 * A job's stream from its beginning: the chunks recorded in the event log, then live ones, until `end`.
 * When retention already dropped part of a finished job's events, its stored outcome is replayed instead.
 */
async function* jobStream(engine: ComputeEngine, agentId: string, id: string, signal: AbortSignal): AsyncGenerator<FsEvent> {
  const job = engine.job(agentId, id);
  if (!job) return;
  const path = `${engine.mountPath}/jobs/${id}/stream`;
  if (TERMINAL.has(job.status) && engine.storage.eventStore.watermark([agentId]) > job.streamFrom) {
    const chunk: ComputeChunk = job.result
      ? { delta: { text: job.result.output.text }, finish_reason: job.result.output.finish_reason, usage: job.result.usage }
      : {
          delta: { text: '' },
          finish_reason: job.status === 'cancelled' ? 'cancelled' : 'error',
          usage: null,
          ...(job.error ? { error: job.error } : {}),
        };
    const time = job.finishedAt ?? Date.now();
    yield { id: 0, type: 'data', path, time, data: chunk };
    yield { id: 0, type: 'end', path, time, data: { status: job.status } };
    return;
  }
  if (TERMINAL.has(job.status)) {
    // A finished job's stream is its stored events: read them by path instead of following the log.
    for (const rec of engine.storage.eventStore.query(agentId, path, { afterId: job.streamFrom })) {
      yield { id: rec.id, type: rec.type, path, time: rec.time, ...(rec.data !== undefined ? { data: rec.data } : {}) };
      if (rec.type === 'end') return;
    }
    return;
  }
  yield* engine.channel(agentId).subscribe(`/jobs/${id}/stream`, job.streamFrom, signal, { endsWithStream: true });
}

function providersDir(engine: ComputeEngine): DirNode {
  return {
    kind: 'dir',
    dynamic: {
      list: () => engine.providers.list().map((p) => p.id),
      get: (id) => {
        const provider = engine.providers.get(id);
        if (!provider) return undefined;
        return dir({
          info: jsonView(() => provider.info()),
          models: jsonView(() => provider.info().models),
          health: jsonView(() => engine.providers.health(id)),
        });
      },
    },
  };
}
