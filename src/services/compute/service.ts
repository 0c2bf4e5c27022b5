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
import { FsError } from '../../fs/errors.js';
import type { FsEvent, FileService } from '../../fs/types.js';
import { SyntheticFs, dir, type DirNode } from '../../fs/synthetic.js';
import { capabilityRoot, recordFiles, recordMeta, recordStream } from '../kit/surface.js';
import type { ComputeEngine } from './engine.js';
import { jobResult, jobStatus, type Job } from './jobs.js';
import { TERMINAL, type ComputeChunk } from './types.js';

export interface ComputeServiceOptions {
  engine: ComputeEngine;
  agentId: string;
}

/** The FileService an agent's namespace mounts at /compute (policy admin-write: `adminWrite: ['/policy']`). */
export function createComputeService({ engine, agentId }: ComputeServiceOptions): FileService {
  engine.applyCaps(agentId);
  const root = capabilityRoot({
    submit: (request) => engine.submit(agentId, request, '/new'),
    records: {
      name: 'jobs',
      ids: () => engine.jobs.ids(agentId),
      get: (id) => {
        const stamp = engine.jobs.stamp(agentId, id);
        return stamp === undefined ? undefined : jobDir(engine, agentId, id, stamp.updatedAt);
      },
    },
    providers: {
      ids: () => engine.providers.list().map((p) => p.id),
      views: (id) => {
        const provider = engine.providers.get(id);
        if (!provider) return undefined;
        return { info: () => provider.info(), models: () => provider.info().models, health: () => engine.providers.health(id) };
      },
    },
    policy: { entry: () => engine.policies.get(agentId), write: (value) => void engine.setPolicy(agentId, value, '/policy') },
    usage: () => engine.usage(agentId),
  });
  return new SyntheticFs(root, 'compute');
}

function jobDir(engine: ComputeEngine, agentId: string, id: string, mtime: number): DirNode {
  const files = recordFiles<Job>({
    base: `/jobs/${id}`,
    fresh: (path) => {
      const job = engine.job(agentId, id);
      if (!job) throw new FsError('ENOENT', path, `no job ${id}`);
      return job;
    },
    meta: recordMeta(() => engine.jobs.stamp(agentId, id), mtime),
    status: jobStatus,
    result: jobResult,
    bounded: () => true,
    channel: engine.channel(agentId),
    stream: {
      events: (_cx, signal) => jobStream(engine, agentId, id, signal),
      mtime: () => mtime,
      finite: () => {
        const job = engine.job(agentId, id);
        return { after: job?.streamFrom ?? 0, ended: !job || TERMINAL.has(job.status) };
      },
    },
    checkCtl: (command, path) => {
      if (command !== 'cancel') throw new FsError('EINVAL', path, `unknown command '${command.slice(0, 40)}' (commands: cancel)`);
    },
    ctl: async (_command, path) => void (await engine.cancel(agentId, id, path)),
  });
  return dir({ status: files.status, result: files.result, stream: files.stream, ctl: files.ctl }, { mtime: () => mtime });
}

/**
 * A job's stream from its beginning: the chunks recorded in the event log, then live ones, until `end`.
 * A finished job's stream is its stored events, read by path; when retention already dropped part of
 * them, its stored outcome is replayed as one chunk.
 */
async function* jobStream(engine: ComputeEngine, agentId: string, id: string, signal: AbortSignal): AsyncGenerator<FsEvent> {
  const job = engine.job(agentId, id);
  if (!job) return;
  yield* recordStream({
    storage: engine.storage,
    channel: engine.channel(agentId),
    agentId,
    rel: `/jobs/${id}/stream`,
    streamFrom: job.streamFrom,
    finished: TERMINAL.has(job.status),
    storedWhenFinished: true,
    replay: () => replayOutcome(job, `${engine.mountPath}/jobs/${id}/stream`),
    signal,
  });
}

function* replayOutcome(job: Job, path: string): Generator<FsEvent> {
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
}
