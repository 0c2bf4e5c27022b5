/**
 * Access levels: how much of a mounted service a caller may use. Plain data, so that a service can say
 * how it wants to be mounted (compute: ReadWrite, policy admin-only) without knowing the mount layer,
 * which enforces them (src/mounts/access.ts) and never the services themselves:
 * - ReadOnly: reads, lists, stats and watches; every write is EACCES
 * - ReadWrite: everything
 * - SignOnly: only the identity files (pubkey, npub, sign, verify, encrypt, decrypt)
 * - Budgeted: everything, but every write charges a budget first (EDQUOT when over)
 * - Disabled: everything is EACCES
 * Admin-only paths (policies) can be written only by an admin principal, whatever the level.
 */
import type { Cx } from './types.js';

/** Charges writes to a budget; throws FsError EDQUOT when the budget cannot pay. */
export interface BudgetHook {
  charge(amountMicroUsd: number, path: string, cx: Cx): void | Promise<void>;
}

export type AccessLevel =
  | { level: 'ReadOnly' }
  | { level: 'ReadWrite' }
  | { level: 'SignOnly'; allow?: readonly string[] }
  | { level: 'Budgeted'; budget: BudgetHook; costPerWrite?: number }
  | { level: 'Disabled' };

export const ReadOnly: AccessLevel = { level: 'ReadOnly' };
export const ReadWrite: AccessLevel = { level: 'ReadWrite' };
export const SignOnly: AccessLevel = { level: 'SignOnly' };
export const Disabled: AccessLevel = { level: 'Disabled' };
export const Budgeted = (budget: BudgetHook, costPerWrite = 1): AccessLevel => ({ level: 'Budgeted', budget, costPerWrite });

export const SIGN_ONLY_FILES = ['/pubkey', '/npub', '/sign', '/verify', '/encrypt', '/decrypt'] as const;

export interface GuardOptions {
  /** Paths (relative to the mount) that only an admin may write. */
  adminWrite?: readonly string[];
}

export function accessLabel(access: AccessLevel): string {
  switch (access.level) {
    case 'ReadOnly':
      return 'ro';
    case 'ReadWrite':
      return 'rw';
    case 'SignOnly':
      return 'sign-only';
    case 'Budgeted':
      return 'budgeted';
    case 'Disabled':
      return 'disabled';
  }
}
