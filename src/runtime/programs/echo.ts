/** `echo`: answers every message into /outbox, addressed to its sender. For tests and demos. */
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
      outbox.push({ to: t.from, payload: t.envelope.payload, metadata: { in_reply_to: t.envelope_id } });
    }
    return { state: { echoed: previous + outbox.length }, outbox };
  },
};
