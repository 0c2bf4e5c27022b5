/**
 * The one way a service words a validation failure, so EINVAL reads the same in every service:
 * `field 'limits.max_pids': Expected number, received string`, `unknown field 'modles'`,
 * `unknown fields 'a', 'b' in limits`; several problems are joined with `; ` (the first three).
 */
import type { z } from 'zod';
import { FsError } from '../../fs/errors.js';
import { parseJson } from '../../fs/synthetic.js';

/** A zod failure as one clear sentence: which field, what is wrong. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length ? ` in ${issue.path.join('.')}` : '';
        return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}${where}`;
      }
      const field = issue.path.length ? `field '${issue.path.join('.')}'` : 'request';
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** `value` checked against `schema`; EINVAL at `path` naming the field (after `prefix`, e.g. `compute: `). */
export function validate<S extends z.ZodTypeAny>(schema: S, value: unknown, path: string, prefix = ''): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new FsError('EINVAL', path, `${prefix}${describeIssues(parsed.error)}`);
  return parsed.data as z.infer<S>;
}

/** A written body as a JSON object; EINVAL otherwise, with an example of what is expected. */
export function parseJsonObject(data: Uint8Array | string, path: string, expected = 'the request must be a JSON object'): Record<string, unknown> {
  const json = parseJson(data, path);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FsError('EINVAL', path, expected);
  return json as Record<string, unknown>;
}
