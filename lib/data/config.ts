/**
 * config.ts: dataset configurations (configs/<name>.yaml): feature layout (SPEC §1), evaluation
 * tIoUs and the stage-1 / stage-2 hyper-parameters. Every field is checked: an unknown key or a
 * value of the wrong type is an Error naming the file and the field, so a typo never silently
 * falls back to a default.
 *
 * Threshold lists may be written as range specs so their float64 values equal numpy's:
 *   {start, stop, step}  -> numpy.arange(start, stop, step)   (the reference's act_thresh_*)
 *   {start, stop, num}   -> numpy.linspace(start, stop, num)  (the reference's tIoU_thresh)
 */
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { numpyArange } from '../postprocess';
import { PACKAGE_ROOT } from '../runtime/native';
import { readRegularFile } from '../util/fs';
import { LIMITS, LimitName, overLimit } from '../util/limits';

export interface Stage1Hyper {
  iterations: number; testEvery: number; batchSize: number; lr: number; weightDecay: number; dropout: number; rAct: number;
  lambdas: [number, number, number, number]; actThreshold: number; bkgThreshold: number; classThreshold: number;
  casThresholds: number[]; agnosticThresholds: number[]; lambda: number; gamma: number; scale: number; softNmsSigma: number;
}

export interface Stage2Hyper {
  lr: number; weightDecay: number; batchSize: number; maxProposals: number; epochs: number; testEvery: number;
  roiBins: number; extension: number; iouThreshold: number; dropout: number;
}

export interface DatasetConfig {
  name: string;
  featureDim: number;
  /** Frame rate the features were extracted at (25 for the I3D features, SPEC §1). */
  featureFps: number;
  /** Frames per snippet (16). */
  snippetFrames: number;
  /** When absent: the sorted labels of gt_full.json. */
  classNames?: string[];
  blockedVideos: string[];
  tiou: number[];
  stage1: Stage1Hyper;
  stage2: Stage2Hyper;
  /** The YAML file this config came from. */
  file?: string;
}

/** Names of the configs shipped in configs/. */
export const CONFIG_NAMES: string[] = ['thumos14', 'gtea', 'beoid', 'activitynet13'];

/** numpy.linspace(start, stop, num) with endpoint: start + i * step, the last value set to stop. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (!Number.isInteger(num) || num < 0) throw new Error(`numpyLinspace: num must be a non-negative integer, received ${num}`);
  const div = num - 1;
  const step = div > 0 ? (stop - start) / div : NaN;
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(div > 0 ? i * step + start : start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** The most values a threshold list (or a range spec's expansion) may hold (lib/util/limits.ts). */
export const MAX_LIST_VALUES = LIMITS.listValues.max;
/** The largest config file read (the shipped ones are about 2 KB). */
export const MAX_CONFIG_BYTES = 1 << 20;

type Kind = 'string' | 'number' | 'positive' | 'nonNegative' | 'int' | 'posInt' | 'strings' | 'numbers' | 'lambdas' | 'dropout';

const TOP: Record<string, Kind | 'stage1' | 'stage2'> = {
  name: 'string', featureDim: 'posInt', featureFps: 'positive', snippetFrames: 'posInt', classNames: 'strings',
  blockedVideos: 'strings', tiou: 'numbers', stage1: 'stage1', stage2: 'stage2',
};
const OPTIONAL_TOP = new Set(['classNames']);

const STAGE1: Record<keyof Stage1Hyper, Kind> = {
  iterations: 'posInt', testEvery: 'posInt', batchSize: 'posInt', lr: 'nonNegative', weightDecay: 'nonNegative',
  dropout: 'dropout', rAct: 'posInt', lambdas: 'lambdas', actThreshold: 'number', bkgThreshold: 'number',
  classThreshold: 'number', casThresholds: 'numbers', agnosticThresholds: 'numbers', lambda: 'number',
  gamma: 'number', scale: 'posInt', softNmsSigma: 'positive',
};
const STAGE2: Record<keyof Stage2Hyper, Kind> = {
  lr: 'nonNegative', weightDecay: 'nonNegative', batchSize: 'posInt', maxProposals: 'posInt', epochs: 'posInt',
  testEvery: 'posInt', roiBins: 'posInt', extension: 'nonNegative', iouThreshold: 'number', dropout: 'dropout',
};

/**
 * obj[key] = value as an own data property, also for "__proto__" (an assignment would replace the
 * prototype and the key would vanish from the validation, so an override "__proto__" would be
 * ignored instead of refused as an unknown field).
 */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** Check one value against its kind; returns the normalized value (range specs expanded). */
function checkValue(v: unknown, kind: Kind, where: string, field: string): unknown {
  const bad = (want: string): never => {
    throw new Error(`${where}: field "${field}" must be ${want}, received ${describe(v)}`);
  };
  const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  switch (kind) {
    case 'string':
      if (typeof v !== 'string' || v.length === 0) bad('a non-empty string');
      return v;
    case 'number':
      if (!isNum(v)) bad('a finite number');
      return v;
    case 'positive':
      if (!isNum(v) || v <= 0) bad('a positive number');
      return v;
    case 'nonNegative':
      if (!isNum(v) || v < 0) bad('a non-negative number');
      return v;
    case 'dropout':
      if (!isNum(v) || v < 0 || v >= 1) bad('a dropout probability in [0, 1) (1 would drop every feature)');
      return v;
    case 'int':
      if (!Number.isInteger(v)) bad('an integer');
      return v;
    case 'posInt':
      if (!Number.isInteger(v) || (v as number) <= 0) bad('a positive integer');
      return v;
    case 'strings':
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && s.length > 0)) bad('a list of non-empty strings');
      if (new Set(v as string[]).size !== (v as string[]).length) bad('a list without duplicates');
      return [...(v as string[])];
    case 'lambdas':
      if (!Array.isArray(v) || v.length !== 4 || !v.every(isNum)) bad('a list of 4 numbers');
      return [...(v as number[])];
    case 'numbers': {
      if (Array.isArray(v)) {
        if (v.length > MAX_LIST_VALUES) bad(`a list of at most ${MAX_LIST_VALUES} numbers (it has ${v.length})`);
        if (!v.every(isNum)) bad('a list of numbers or a range {start, stop, step} / {start, stop, num}');
        return [...(v as number[])];
      }
      if (!isPlainObject(v)) bad('a list of numbers or a range {start, stop, step} / {start, stop, num}');
      const spec = v as Record<string, unknown>;
      const keys = Object.keys(spec).sort().join(',');
      if (keys !== 'start,step,stop' && keys !== 'num,start,stop') {
        bad('a range with exactly the keys {start, stop, step} (numpy arange) or {start, stop, num} (numpy linspace)');
      }
      for (const k of Object.keys(spec)) {
        if (!isNum(spec[k])) throw new Error(`${where}: field "${field}.${k}" must be a finite number, received ${describe(spec[k])}`);
      }
      if (Object.hasOwn(spec, 'step')) {
        if (spec.step === 0) throw new Error(`${where}: field "${field}.step" must not be 0`);
        const count = Math.ceil(((spec.stop as number) - (spec.start as number)) / (spec.step as number));
        if (!(count <= MAX_LIST_VALUES))
          throw new Error(`${where}: field "${field}" {start, stop, step} expands to ${count} values; at most ${MAX_LIST_VALUES} are allowed`);
        return numpyArange(spec.start as number, spec.stop as number, spec.step as number);
      }
      if (!Number.isInteger(spec.num) || (spec.num as number) < 1) {
        throw new Error(`${where}: field "${field}.num" must be a positive integer, received ${describe(spec.num)}`);
      }
      if ((spec.num as number) > MAX_LIST_VALUES) throw new Error(`${where}: field "${field}.num" is ${spec.num}; at most ${MAX_LIST_VALUES} values are allowed`);
      return numpyLinspace(spec.start as number, spec.stop as number, spec.num as number);
    }
  }
}

/** Fields bounded by lib/util/limits.ts (by their name in the file, whatever their section). */
const FIELD_LIMITS: Record<string, LimitName> = {
  featureDim: 'featureDim', snippetFrames: 'snippetFrames', iterations: 'iterations', epochs: 'epochs', batchSize: 'batchSize',
  maxProposals: 'maxProposals', scale: 'scale', roiBins: 'roiBins', rAct: 'rAct', extension: 'extension',
};

function checkMax(v: unknown, where: string, field: string): void {
  const key = field.slice(field.lastIndexOf('.') + 1);
  const why = Object.hasOwn(FIELD_LIMITS, key) && typeof v === 'number' ? overLimit(FIELD_LIMITS[key], v) : null;
  if (why) throw new Error(`${where}: field "${field}" is ${v}; ${why}`);
}

function checkSection(raw: unknown, schema: Record<string, Kind>, where: string, section: string): Record<string, unknown> {
  if (!isPlainObject(raw)) throw new Error(`${where}: field "${section}" must be an object, received ${describe(raw)}`);
  const out: Record<string, unknown> = {};
  // own keys only: "constructor", "toString" or "__proto__" in a YAML file is an unknown field, not Object.prototype's
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(schema, key)) throw new Error(`${where}: unknown field "${section}.${key}" (known: ${Object.keys(schema).join(', ')})`);
  }
  for (const [key, kind] of Object.entries(schema)) {
    if (!Object.hasOwn(raw, key) || raw[key] === undefined) throw new Error(`${where}: missing field "${section}.${key}"`);
    out[key] = checkValue(raw[key], kind, where, `${section}.${key}`);
    checkMax(out[key], where, `${section}.${key}`);
  }
  return out;
}

/** Validate a parsed config object; `where` names its source in errors. */
export function validateConfig(raw: unknown, where: string): DatasetConfig {
  if (!isPlainObject(raw)) throw new Error(`${where}: a config must be a YAML mapping, received ${describe(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(TOP, key)) throw new Error(`${where}: unknown field "${key}" (known: ${Object.keys(TOP).join(', ')})`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, kind] of Object.entries(TOP)) {
    const v = Object.hasOwn(raw, key) ? raw[key] : undefined;
    if (v === undefined || v === null) {
      if (OPTIONAL_TOP.has(key)) continue;
      throw new Error(`${where}: missing field "${key}"`);
    }
    if (kind === 'stage1') out[key] = checkSection(v, STAGE1, where, key);
    else if (kind === 'stage2') out[key] = checkSection(v, STAGE2, where, key);
    else out[key] = checkValue(v, kind, where, key);
    checkMax(out[key], where, key);
  }
  const cfg = out as unknown as DatasetConfig;
  if (cfg.tiou.some((t) => t <= 0 || t > 1)) throw new Error(`${where}: field "tiou" values must lie in (0, 1]`);
  return cfg;
}

/** Resolve a config name (configs/<name>.yaml under the package root) or a path to a YAML file. */
export function resolveConfigFile(nameOrPath: string): string {
  const looksLikePath = /[\\/]/.test(nameOrPath) || /\.ya?ml$/i.test(nameOrPath);
  if (looksLikePath) return path.resolve(nameOrPath);
  const file = path.join(PACKAGE_ROOT, 'configs', `${nameOrPath.toLowerCase()}.yaml`);
  if (!fs.existsSync(file)) {
    throw new Error(`unknown config "${nameOrPath}": no ${file} (known: ${CONFIG_NAMES.join(', ')}; or give a path to a .yaml file)`);
  }
  return file;
}

/**
 * Load and validate a config. `overrides` replace fields after the file is read and are checked
 * the same way: top-level keys (`featureDim`, `classNames`, ...) or dotted stage keys
 * (`'stage1.lr'`, `'stage2.epochs'`), or whole `stage1` / `stage2` partial objects.
 */
export function loadConfig(
  nameOrPath: string,
  overrides?: Partial<Pick<DatasetConfig, 'featureDim'>> & Record<string, unknown>,
): DatasetConfig {
  const file = resolveConfigFile(nameOrPath);
  if (!fs.existsSync(file)) throw new Error(`config file not found: ${file}`);
  let raw: unknown;
  const size = fs.statSync(file).size;
  if (size > MAX_CONFIG_BYTES) throw new Error(`${file}: ${size} bytes is too large for a config (at most ${MAX_CONFIG_BYTES}); is it the right file?`);
  // a FIFO or a device is refused before any read
  const text = readRegularFile(file, MAX_CONFIG_BYTES).toString('utf8');
  try {
    // warnings (an unresolved !tag: a stray '!') are errors too, named with their line, not printed
    const doc = YAML.parseDocument(text.replace(/^\uFEFF/, ''), { logLevel: 'silent' });
    const first = doc.errors[0] ?? doc.warnings[0];
    if (first) throw first;
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new Error(`${file}: invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const cfg = validateConfig(raw, file);
  if (overrides && Object.keys(overrides).length > 0) {
    // Overrides are applied to the validated config then the whole is validated again, so range
    // specs in the file stay expanded and an override of the wrong type names the override.
    const merged: Record<string, unknown> = JSON.parse(JSON.stringify(cfg));
    for (const [key, value] of Object.entries(overrides)) {
      if (value === undefined) continue;
      const dot = key.indexOf('.');
      if (dot >= 0) {
        const section = key.slice(0, dot);
        const field = key.slice(dot + 1);
        if (section !== 'stage1' && section !== 'stage2') throw new Error(`${file} (overrides): unknown field "${key}"`);
        setOwn(merged[section] as Record<string, unknown>, field, value);
      } else if ((key === 'stage1' || key === 'stage2') && isPlainObject(value)) {
        for (const f of Object.keys(value)) setOwn(merged[key] as Record<string, unknown>, f, value[f]);
      } else {
        setOwn(merged, key, value);
      }
    }
    const again = validateConfig(merged, `${file} (overrides)`);
    again.file = file;
    return again;
  }
  cfg.file = file;
  return cfg;
}
