/**
 * A checker of the Prometheus text exposition format (version 0.0.4) with the lint rules of
 * `promtool check metrics` (Prometheus' promlint) that a server's output can break. It parses every
 * line by the format's grammar (HELP, TYPE, samples with escaped label values, float values) and
 * reports: a sample before or without its family's TYPE, a family without HELP or with two TYPEs, bad
 * metric or label names, a duplicate series, a counter not named `_total` and anything else named
 * `_total`, histogram samples other than `_bucket` (with `le`), `_sum` and `_count`, buckets that are
 * not cumulative or whose `+Inf` is not the count, `_bucket`/`_sum`/`_count` names and `le` outside
 * histograms, `quantile` outside summaries, camelCase metric or label names, `:` in a name, a type in
 * the name (`_gauge`, `_counter`), non-base units (`_milliseconds`, `_kilobytes`, `_minutes`...) and
 * abbreviated ones (`_ms`, `_sec`, `_s`, `_kb`...), as promlint words them. An empty list means clean.
 */

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** The units promlint knows, each with its base unit; a name part that is one, prefixed or not, must be a base unit. */
const UNITS: Record<string, string> = {
  amperes: 'amperes', bytes: 'bytes', celsius: 'celsius', grams: 'grams', joules: 'joules', kelvin: 'kelvin',
  meters: 'meters', metres: 'metres', seconds: 'seconds', volts: 'volts',
  minutes: 'seconds', hours: 'seconds', days: 'seconds', weeks: 'seconds', kelvins: 'kelvin', fahrenheit: 'celsius',
  rankine: 'celsius', inches: 'meters', yards: 'meters', miles: 'meters', bits: 'bytes', calories: 'joules',
  pounds: 'grams', ounces: 'grams',
};
const UNIT_PREFIXES = ['', 'pico', 'nano', 'micro', 'milli', 'centi', 'deci', 'deca', 'hecto', 'kilo', 'kibi', 'mega', 'mibi', 'giga', 'gibi', 'tera', 'tebi', 'peta', 'pebi'];
/** Abbreviated units promlint discourages, as a name part (`_ms_`) or at the end (`_ms`). */
const ABBREVIATIONS = ['s', 'ms', 'us', 'ns', 'sec', 'b', 'kb', 'mb', 'gb', 'tb', 'pb', 'm', 'h', 'd'];
const TYPE_WORDS = ['counter', 'gauge', 'summary', 'histogram', 'gauge_histogram'];

/** A non-base unit in the name, with the base unit it should use. */
function nonBaseUnit(name: string): [string, string] | undefined {
  for (const part of name.split('_')) {
    for (const [unit, base] of Object.entries(UNITS)) {
      for (const prefix of UNIT_PREFIXES) if (part === prefix + unit && part !== base) return [part, base];
    }
  }
  return undefined;
}

const partOrEnd = (name: string, word: string) => name.includes(`_${word}_`) || name.endsWith(`_${word}`);

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type?: string;
  help?: string;
  samples: Sample[];
}

function parseValue(text: string): number | undefined {
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : undefined;
}

/** Parses `name{a="x",b="y"} value [timestamp]`; undefined when the line is not a sample. */
function parseSample(line: string): Sample | undefined {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{)?/.exec(line);
  if (!m) return undefined;
  const labels: Record<string, string> = {};
  let at = m[0].length;
  if (m[2]) {
    for (;;) {
      while (line[at] === ' ') at++;
      if (line[at] === '}') {
        at++;
        break;
      }
      const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(at))?.[0];
      if (!name || line[at + name.length] !== '=' || line[at + name.length + 1] !== '"') return undefined;
      at += name.length + 2;
      let value = '';
      for (;;) {
        const c = line[at++];
        if (c === undefined) return undefined;
        if (c === '"') break;
        if (c === '\\') {
          const e = line[at++];
          if (e === 'n') value += '\n';
          else if (e === '\\' || e === '"') value += e;
          else return undefined;
        } else value += c;
      }
      if (name in labels) return undefined;
      labels[name] = value;
      while (line[at] === ' ') at++;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') return undefined;
    }
  }
  const rest = line.slice(at).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2) return undefined;
  const value = parseValue(rest[0]!);
  if (value === undefined) return undefined;
  if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) return undefined;
  return { name: m[1]!, labels, value };
}

/** The family a sample belongs to: its name, or for histograms and summaries its name less the suffix. */
function familyOf(name: string, families: Map<string, Family>): string | undefined {
  if (families.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const t = families.get(base)?.type;
      if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return base;
    }
  }
  return undefined;
}

export function lintExposition(text: string): { problems: string[]; samples: Sample[] } {
  const problems: string[] = [];
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') problems.push('the exposition does not end with a newline');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line === '') return;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) problems.push(`${where}: bad metric name '${name}'`);
      const f = families.get(name) ?? { samples: [] };
      families.set(name, f);
      if (kind === 'TYPE') {
        if (f.type !== undefined) problems.push(`${where}: second TYPE for ${name}`);
        if (f.samples.length > 0) problems.push(`${where}: TYPE of ${name} after its samples`);
        if (!TYPES.has(rest.trim())) problems.push(`${where}: unknown type '${rest}' for ${name}`);
        f.type = rest.trim();
      } else {
        if (f.help !== undefined) problems.push(`${where}: second HELP for ${name}`);
        f.help = rest;
      }
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line);
    if (!sample) {
      problems.push(`${where}: not a sample: ${line}`);
      return;
    }
    for (const l of Object.keys(sample.labels)) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) problems.push(`${where}: bad label name '${l}'`);
    }
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(key)) problems.push(`${where}: duplicate series ${line}`);
    seen.add(key);
    const family = familyOf(sample.name, families);
    if (family === undefined || families.get(family)!.type === undefined) {
      problems.push(`${where}: ${sample.name} has no TYPE before it`);
      return;
    }
    families.get(family)!.samples.push(sample);
    samples.push(sample);
  });

  for (const [name, f] of families) {
    const t = f.type ?? 'untyped';
    const lower = name.toLowerCase();
    if (f.help === undefined) problems.push(`${name}: no help text`);
    if (t === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter metrics should have "_total" suffix`);
    if (t !== 'counter' && t !== 'untyped' && name.endsWith('_total')) problems.push(`${name}: non-counter metrics should not have "_total" suffix`);
    if (t !== 'untyped' && t !== 'histogram' && name.endsWith('_bucket')) problems.push(`${name}: non-histogram metrics should not have "_bucket" suffix`);
    for (const suffix of ['_count', '_sum']) {
      if (t !== 'untyped' && t !== 'histogram' && t !== 'summary' && name.endsWith(suffix)) problems.push(`${name}: non-histogram and non-summary metrics should not have "${suffix}" suffix`);
    }
    if (/[a-z][A-Z]/.test(name)) problems.push(`${name}: metric names should be written in 'snake_case' not 'camelCase'`);
    if (name.includes(':')) problems.push(`${name}: metric names should not contain ':'`);
    for (const w of TYPE_WORDS) if (partOrEnd(lower, w)) problems.push(`${name}: metric name should not include type '${w}'`);
    const unit = nonBaseUnit(name);
    if (unit) problems.push(`${name}: use base unit "${unit[1]}" instead of "${unit[0]}"`);
    for (const a of ABBREVIATIONS) if (partOrEnd(lower, a)) problems.push(`${name}: metric names should not contain abbreviated units ("${a}")`);
    for (const s of f.samples) {
      if (t !== 'untyped' && t !== 'histogram' && 'le' in s.labels) problems.push(`${s.name}: non-histogram metrics should not have "le" label`);
      if (t !== 'untyped' && t !== 'summary' && 'quantile' in s.labels) problems.push(`${s.name}: non-summary metrics should not have "quantile" label`);
      for (const l of Object.keys(s.labels)) if (/[a-z][A-Z]/.test(l)) problems.push(`${s.name}: label names should be written in 'snake_case' not 'camelCase'`);
    }
    if (t === 'histogram') problems.push(...histogramProblems(name, f.samples));
  }
  return { problems, samples };
}

/** Buckets per label set: `le` present, cumulative, `+Inf` equal to `_count`. */
function histogramProblems(name: string, samples: Sample[]): string[] {
  const problems: string[] = [];
  const series = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const s of samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const one = series.get(key) ?? { buckets: [] };
    series.set(key, one);
    if (s.name === `${name}_bucket`) {
      const bound = le === undefined ? undefined : parseValue(le);
      if (bound === undefined) problems.push(`${name}_bucket without a valid le`);
      else one.buckets.push([bound, s.value]);
    } else if (s.name === `${name}_count`) one.count = s.value;
    else if (s.name !== `${name}_sum`) problems.push(`${s.name}: not a sample of histogram ${name}`);
  }
  for (const [key, one] of series) {
    one.buckets.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < one.buckets.length; i++) {
      if (one.buckets[i]![1] < one.buckets[i - 1]![1]) problems.push(`${name}${key}: buckets are not cumulative`);
    }
    const inf = one.buckets.find(([b]) => b === Infinity);
    if (!inf) problems.push(`${name}${key}: no +Inf bucket`);
    else if (one.count !== undefined && inf[1] !== one.count) problems.push(`${name}${key}: +Inf bucket ${inf[1]} is not the count ${one.count}`);
  }
  return problems;
}
