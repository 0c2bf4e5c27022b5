/**
 * Submitting a session (`new`). The idempotency journal is asked first, on the request as written, so a
 * repeat answers with its session whatever changed since (policy, defaults, the engine's health, the
 * budget). Then everything that can be refused is refused before anything is reserved: bad JSON or
 * fields and limits over policy (EINVAL), refused images (EACCES), an unavailable engine (EREMOTEIO), too
 * many sessions (EAGAIN), no budget (EDQUOT). The reservation, the record and the journal entry commit
 * in one transaction; then the session is launched.
 */
import { FsError } from '../../../fs/errors.js';
import type { BudgetScope } from '../../../runtime/budget-ledger.js';
import { parseJsonObject } from '../../kit/validation.js';
import { imageRefusal } from '../policy.js';
import { normalizeImage } from '../providers/docker.js';
import type { ContainerProvider } from '../providers/types.js';
import { SESSION_REQUEST_EXAMPLE, parseSessionValue, type SessionRequest } from '../request.js';
import { newSessionId } from '../store.js';
import { SESSION_TERMINAL, type SessionRecord, type SessionResult, type SessionStatus } from '../types.js';
import { sessionResult } from './answers.js';
import type { Lifecycle } from './lifecycle.js';
import type { Recovery } from './recovery.js';
import { CONTAINERS_SERVICE, type EngineState } from './state.js';

export interface SubmitAnswer {
  session_id: string;
  status: SessionStatus;
  kind: SessionRequest['kind'];
  image: string;
  provider: string;
  /** True when the idempotency key matched an earlier request: this is that request's session. */
  replayed?: true;
  paths: { status: string; result: string; output: string; usage: string; ctl: string; exec: string; files: string };
}

export class Submits {
  constructor(
    private readonly s: EngineState,
    private readonly lifecycle: Lifecycle,
    private readonly recovery: Recovery,
  ) {}

  paths(sid: string): SubmitAnswer['paths'] {
    const base = `${this.s.kit.mountPath}/sessions/${sid}`;
    return {
      status: `${base}/status`,
      result: `${base}/result`,
      output: `${base}/output`,
      usage: `${base}/usage`,
      ctl: `${base}/ctl`,
      exec: `${base}/exec`,
      files: `${base}/files`,
    };
  }

  async submit(agentId: string, data: Uint8Array, path: string): Promise<SubmitAnswer | SessionResult> {
    const { s } = this;
    const raw = parseJsonObject(data, path, `the request must be a JSON object, e.g. ${SESSION_REQUEST_EXAMPLE}`);
    const submission = s.kit.submits.begin(agentId, raw);
    // A repeat answers with its session even when the engine is down or the agent is at its limits.
    const earlier = s.kit.submits.earlier(submission, path);
    if (earlier !== undefined) return this.answer(earlier, raw['wait'] === true, true, path);
    const policy = s.policy(agentId);
    const req = parseSessionValue(raw, policy, path);
    const provider = this.pickProvider(req.provider, path);
    const refusal = imageRefusal(policy, req.image, normalizeImage(req.image));
    if (refusal) throw new FsError('EACCES', path, `${refusal} (see ${s.kit.mountPath}/policy)`);
    await this.recovery.requireAvailable(provider, path);
    if (!(await provider.hasImage(req.image))) {
      const images = await provider.images().catch(() => []);
      throw new FsError(
        'EINVAL',
        path,
        `field 'image': ${req.image} is not in the engine (agent9 never pulls from a registry); present: ${images.join(', ') || 'none'}`,
      );
    }

    const rate = Math.ceil(policy.price_per_cpu_second * req.limits.cpu_cores);
    const cap = req.max_cost ?? policy.default_max_cost ?? undefined;
    let lifetime = req.limits.time_secs;
    let reserve = rate * lifetime;
    if (cap !== undefined) {
      reserve = cap;
      if (rate > 0) {
        const affordable = Math.floor(cap / rate);
        if (affordable < 1) {
          throw new FsError('EINVAL', path, `a max cost of ${cap} micro-USD buys less than one second at ${rate} micro-USD per second`);
        }
        lifetime = Math.min(lifetime, affordable);
      }
    }
    if (policy.max_cost_per_session !== null && reserve > policy.max_cost_per_session) {
      throw new FsError(
        'EDQUOT',
        path,
        `this session would reserve ${reserve} micro-USD, over the policy's max_cost_per_session (${policy.max_cost_per_session}); ask for less time or cores, or set max_cost`,
      );
    }
    s.kit.applyCaps(agentId, policy);
    const request: SessionRequest = { ...req, limits: { ...req.limits, time_secs: lifetime, exec_timeout_secs: Math.min(req.limits.exec_timeout_secs, lifetime) } };

    const create = (): string => {
      if (s.sessions.activeCount(agentId) >= policy.max_concurrent) {
        throw new FsError('EAGAIN', path, `${policy.max_concurrent} sessions are already running (policy max_concurrent); stop one or wait`, {
          retryAfterMs: 1000,
        });
      }
      const now = s.now();
      const id = newSessionId();
      const scope: BudgetScope = { service: CONTAINERS_SERVICE, ...req.budget_scope };
      const reservation = s.kit.ledger.reserve(agentId, reserve, scope, `containers session ${id}`, path);
      const rec: SessionRecord = {
        id,
        agentId,
        provider: provider.id,
        request,
        status: 'provisioning',
        error: null,
        stopReason: null,
        containerId: null,
        exitCode: null,
        createdAt: now,
        startedAt: null,
        finishedAt: null,
        deadlineAt: null,
        reservationId: reservation.id,
        reserved: reserve,
        rate,
        cost: null,
        usage: null,
        streamFrom: s.storage.eventStore.lastId(),
        nextExec: 1,
        version: 1,
        updatedAt: now,
      };
      s.sessions.insert(rec);
      s.channel(agentId).emit(`/sessions/${id}`, 'created', { version: 1 });
      s.kit.trace(agentId, {
        type: 'containers_session_start',
        session_id: id,
        image: request.image,
        kind: request.kind,
        reserved: reserve,
        ...(req.budget_scope ? { budget_scope: req.budget_scope } : {}),
      });
      return id;
    };

    // Two racing requests with one key: the journal lets exactly one of them create.
    const committed = s.tx(() => s.kit.submits.commit(submission, path, create));
    if (!committed.replayed) this.lifecycle.launch(s.sessions.get(committed.id)!);
    return this.answer(committed.id, req.wait, committed.replayed, path);
  }

  /** What `new` answers: the session and its paths, or with `wait` its result once its commands ran. */
  private async answer(sid: string, wait: boolean, replayed: boolean, path: string): Promise<SubmitAnswer | SessionResult> {
    const { s } = this;
    if (wait) {
      // Ephemeral: until it ends, then its result. Interactive: until its commands ran, then its status.
      const live = s.live.get(sid);
      await (s.sessions.get(sid)?.request.kind === 'ephemeral' ? live?.done : live?.commandsDone);
      const rec = s.sessions.get(sid);
      if (rec && SESSION_TERMINAL.has(rec.status)) return sessionResult(s, rec, path);
    }
    const rec = s.sessions.get(sid);
    if (!rec) throw new FsError('ENOENT', path, `session ${sid} is no longer kept`);
    return {
      session_id: sid,
      status: rec.status,
      kind: rec.request.kind,
      image: rec.request.image,
      provider: rec.provider,
      ...(replayed ? { replayed: true as const } : {}),
      paths: this.paths(sid),
    };
  }

  private pickProvider(id: string | undefined, path: string): ContainerProvider {
    const { providers } = this.s;
    if (id !== undefined) {
      const p = this.s.provider(id);
      if (!p) throw new FsError('EINVAL', path, `unknown provider '${id}' (providers: ${providers.map((x) => x.id).join(', ')})`);
      return p;
    }
    const first = providers[0];
    if (!first) throw new FsError('EREMOTEIO', path, 'no container provider is configured');
    return first;
  }
}
