/**
 * `echo`: answers every message into /outbox, addressed to its sender (so an agent that sent it gets
 * the answer in its inbox), naming what it answers (`in_reply_to`). A message to itself is answered
 * without an address (it would answer itself). For tests and demos.
 */
import { FsError } from '../../fs/errors.js';
import type { Program, ProgramResult } from './index.js';

export const echoProgram: Program = {
  name: 'echo',
  live: false,
  validate(spec, path) {
    const extra = Object.keys(spec).filter((k) => k !== 'type');
    if (extra.length) throw new FsError('EINVAL', path, `bad program: echo takes no options (got ${extra.join(', ')})`);
    return { type: 'echo' };
  },
  async run(ctx): Promise<ProgramResult> {
    const previous = (ctx.state as { echoed?: number } | undefined)?.echoed ?? 0;
    const outbox = [];
    for (const t of ctx.triggers) {
      if (t.type !== 'message') continue;
      const self = t.from === `agent:${ctx.agentId}`;
      outbox.push({ ...(self ? {} : { to: t.from }), payload: t.envelope.payload, metadata: { in_reply_to: t.envelope_id } });
    }
    return { state: { echoed: previous + outbox.length }, outbox };
  },
};
