/**
 * Who the session's user is, and what the kernel would let that user do. files/ acts from the host (as
 * root), so it applies the user's permissions itself: the owner/group/other mode bits and the few
 * capabilities that override them, exactly as the container's init process holds them. POSIX ACLs are
 * not consulted (nothing in a session's tmpfs workdir sets them unless a command does).
 */
import type { BigIntStats } from 'node:fs';
import { FsError } from '../../../fs/errors.js';

export interface Identity {
  uid: number;
  gid: number;
  groups: ReadonlySet<number>;
  /** The effective capability set (CapEff of /proc/<pid>/status). */
  caps: bigint;
}

export const R = 4;
export const W = 2;
export const X = 1;
export const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;

const CAP_CHOWN = 0n;
const CAP_DAC_OVERRIDE = 1n;
const CAP_DAC_READ_SEARCH = 2n;
const CAP_FOWNER = 3n;
const CAP_FSETID = 4n;

const has = (user: Identity, cap: bigint) => ((user.caps >> cap) & 1n) === 1n;

/** The file-system identity of a process from its /proc/<pid>/status. */
export function identityOf(status: string): Identity {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/) ?? [];
  // Uid/Gid lines: real, effective, saved, file system; access checks use the last.
  const uid = Number(field('Uid')[3]);
  const gid = Number(field('Gid')[3]);
  const caps = field('CapEff')[0];
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || caps === undefined) throw new Error('unreadable process status');
  return { uid, gid, groups: new Set(field('Groups').filter(Boolean).map(Number)), caps: BigInt(`0x${caps}`) };
}

export function inGroup(user: Identity, gid: number): boolean {
  return user.gid === gid || user.groups.has(gid);
}

/** Whether `user` may read (R), write (W) and/or search or execute (X) this file. */
export function may(user: Identity, st: BigIntStats, want: number): boolean {
  const dir = st.isDirectory();
  const mode = Number(st.mode);
  if (has(user, CAP_DAC_OVERRIDE) && (!(want & X) || dir || (mode & 0o111) !== 0)) return true;
  if (has(user, CAP_DAC_READ_SEARCH) && !(want & W) && (dir || !(want & X))) return true;
  const bits = user.uid === Number(st.uid) ? mode >> 6 : inGroup(user, Number(st.gid)) ? mode >> 3 : mode;
  return (bits & want) === want;
}

export function need(user: Identity, st: BigIntStats, want: number, path: string): void {
  if (!may(user, st, want)) throw new FsError('EACCES', path, 'permission denied');
}

/** chmod, utimes with given times: the owner, or a holder of CAP_FOWNER. */
export function needOwner(user: Identity, st: BigIntStats, path: string, what: string): void {
  if (user.uid !== Number(st.uid) && !has(user, CAP_FOWNER)) throw new FsError('EPERM', path, `only the owner may ${what}`);
}

/** Removing or renaming `child` from `dir`: in a sticky directory only the owner of either may. */
export function mayUnlink(user: Identity, dir: BigIntStats, child: BigIntStats): boolean {
  if (!may(user, dir, W | X)) return false;
  if ((Number(dir.mode) & S_ISVTX) === 0 || has(user, CAP_FOWNER)) return true;
  return user.uid === Number(child.uid) || user.uid === Number(dir.uid);
}

export function needUnlink(user: Identity, dir: BigIntStats, child: BigIntStats, path: string): void {
  need(user, dir, W | X, path);
  if (!mayUnlink(user, dir, child)) throw new FsError('EPERM', path, 'the directory is sticky: only the owner may remove or rename this');
}

/** chown as the kernel allows it: anything with CAP_CHOWN; else the owner, to itself and one of its groups. */
export function needChown(user: Identity, st: BigIntStats, uid: number | undefined, gid: number | undefined, path: string): void {
  if (has(user, CAP_CHOWN)) return;
  if ((uid !== undefined && uid !== Number(st.uid)) || user.uid !== Number(st.uid)) {
    throw new FsError('EPERM', path, 'only root may give a file to another user');
  }
  if (gid !== undefined && gid !== Number(st.gid) && !inGroup(user, gid)) {
    throw new FsError('EPERM', path, `the user is not in group ${gid}`);
  }
}

/** The mode chmod really sets: without CAP_FSETID, setgid goes unless the file's group is one of the user's. */
export function chmodBits(user: Identity, gid: number, mode: number): number {
  return has(user, CAP_FSETID) || inGroup(user, gid) ? mode : mode & ~S_ISGID;
}

/** Owner of a new file in `dir`: the user, with the directory's group when the directory is setgid. */
export function newOwner(user: Identity, dir: BigIntStats): { uid: number; gid: number } {
  return { uid: user.uid, gid: (Number(dir.mode) & S_ISGID) !== 0 ? Number(dir.gid) : user.gid };
}

/**
 * Whether a copy of `old` written aside and renamed over it can get the same owner and group, as the
 * user could give them: then the file stays whose it was, as with a write in place.
 */
export function canKeepOwner(user: Identity, old: BigIntStats): boolean {
  return has(user, CAP_CHOWN) || (user.uid === Number(old.uid) && inGroup(user, Number(old.gid)));
}
