/**
 * Image references, checked against the engine's own grammar (the distribution reference grammar the
 * Docker engine parses) before any engine call. A reference becomes a segment of an engine API path
 * (`/images/<ref>/json`); one with `..`, `//` or `?` in it made the engine redirect, and the client
 * library crashed the process following that redirect. A reference that passes here is also one the
 * engine accepts, so the engine never answers "invalid reference format" to a request.
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] component ( "/" component )*      at most 255 characters
 *   domain    := host [ ":" port ]     host: dns labels joined by "."
 *   component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" hex{64} | "sha384:" hex{96} | "sha512:" hex{128}     (hex: lower case)
 *
 * The first part of a name is a domain when it has a `.` or a `:` or is `localhost`; everything else is
 * a path component and must be lower case. (Engines since 2023 also take an upper-case first part for
 * a domain, and `[ipv6]` hosts; 20.10 does neither, so agent9 accepts only what both accept.) The
 * grammar's general digest form (any algorithm, 32 or more hex digits) is narrower in the engine: it
 * validates the digest too, so only the registered algorithms with their exact lengths pass.
 */
import { FsError } from '../../fs/errors.js';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DNS_LABEL = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const PORT = /^[0-9]+$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/;
const HEX64 = /^[a-f0-9]{64}$/;
export const MAX_NAME_LENGTH = 255;

/** What a reference looks like, for messages. */
export const REFERENCE_FORM = '[host[:port]/]name[:tag][@sha256:hex], name parts lower-case letters and digits joined by . _ __ or -';

export interface ImageReference {
  domain: string | undefined;
  /** The repository path: components joined by `/`. */
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

function domainProblem(domain: string): string | undefined {
  const colon = domain.indexOf(':');
  const host = colon === -1 ? domain : domain.slice(0, colon);
  const port = colon === -1 ? undefined : domain.slice(colon + 1);
  if (port !== undefined && !PORT.test(port)) return `the port of registry ${JSON.stringify(domain)} is not a number`;
  if (host === '' || !host.split('.').every((label) => DNS_LABEL.test(label))) {
    return `${JSON.stringify(domain)} is not a registry host (letters, digits and - in labels joined by .)`;
  }
  return undefined;
}

/** The reference's parts, or a sentence saying what is wrong with it. */
export function parseImageReference(ref: string): ImageReference | string {
  if (ref.length === 0) return 'the reference is empty';
  const at = ref.indexOf('@');
  const digest = at === -1 ? undefined : ref.slice(at + 1);
  const nameAndTag = at === -1 ? ref : ref.slice(0, at);
  if (digest !== undefined && !DIGEST.test(digest)) return `the digest ${JSON.stringify(digest)} is not sha256:<64 hex digits> (or sha384:<96>, sha512:<128>), lower case`;
  const lastSlash = nameAndTag.lastIndexOf('/');
  const colon = nameAndTag.indexOf(':', lastSlash + 1);
  const tag = colon === -1 ? undefined : nameAndTag.slice(colon + 1);
  const name = colon === -1 ? nameAndTag : nameAndTag.slice(0, colon);
  if (tag !== undefined && !TAG.test(tag)) return `the tag ${JSON.stringify(tag)} is not 1-128 letters, digits, _ . - (not starting with . or -)`;
  if (name.length === 0) return 'the reference has no name';
  if (name.length > MAX_NAME_LENGTH) return `the name has ${name.length} characters, more than ${MAX_NAME_LENGTH}`;
  const parts = name.split('/');
  const first = parts[0]!;
  const hasDomain = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const domain = hasDomain ? parts.shift() : undefined;
  if (domain !== undefined) {
    const problem = domainProblem(domain);
    if (problem) return problem;
  }
  for (const component of parts) {
    if (component !== component.toLowerCase() && COMPONENT.test(component.toLowerCase())) return 'repository names must be lower case';
    if (!COMPONENT.test(component)) {
      return `${JSON.stringify(component)} is not a name component (lower-case letters and digits, joined by . _ __ or -)`;
    }
  }
  const path = parts.join('/');
  if (domain === undefined && HEX64.test(path)) return 'a 64-hex-digit image id is not a reference; use the image name';
  return { domain, path, tag, digest };
}

/** The reason a reference is refused, or undefined when it is valid. */
export function imageReferenceProblem(ref: string): string | undefined {
  const parsed = parseImageReference(ref);
  return typeof parsed === 'string' ? parsed : undefined;
}

/** Why a reference is refused, as one sentence: the value, what is wrong, and the form it must have. */
export function describeBadReference(ref: string, problem: string): string {
  return `${JSON.stringify(ref)} is not an image reference: ${problem} (${REFERENCE_FORM})`;
}

/** The reference itself, or EINVAL naming the field (and where the value came from) with what is wrong. */
export function checkImageReference(ref: string, path: string, field = 'image', source?: string): string {
  const problem = imageReferenceProblem(ref);
  if (problem) throw new FsError('EINVAL', path, `field '${field}': ${source ? `${source} ` : ''}${describeBadReference(ref, problem)}`);
  return ref;
}

/** The characters of a pattern: those of references, and `*`. */
const PATTERN_CHARS = /^[A-Za-z0-9._:/@*-]+$/;

/**
 * Why a policy pattern (`*` matches any run of characters) can never match a valid reference, or
 * undefined when it may. A pattern without `*` must be a reference; one with `*` may only hold
 * reference characters and has no empty, `.` or `..` path part.
 */
export function imagePatternProblem(pattern: string): string | undefined {
  if (!pattern.includes('*')) return imageReferenceProblem(pattern);
  if (!PATTERN_CHARS.test(pattern)) return 'a pattern holds only the characters of image references (letters, digits, . _ - : / @) and *';
  const parts = pattern.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return 'a pattern has no empty, . or .. parts between its slashes';
  return undefined;
}
