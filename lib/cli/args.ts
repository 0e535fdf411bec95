/**
 * A small, strict argument parser for the subcommands: --name value, --flag, repeated options.
 * Unknown options are an error naming the option (a typo must not silently use a default).
 */
import { EXAMPLES } from './examples';

/** A usage error: printed without a stack trace, exit code 2. */
export class CliError extends Error {}

export interface OptionSpec {
  /** 'string' takes a value; 'number' takes a numeric value; 'boolean' takes none; 'list' repeats. */
  type: 'string' | 'number' | 'boolean' | 'list';
  describe: string;
  default?: string | number | boolean;
  required?: boolean;
}

export type Parsed = Record<string, string | number | boolean | string[] | undefined>;

/** `about`: text shown after the options in --help and usage errors (what the command does, examples). */
export function parseArgs(command: string, argv: string[], spec: Record<string, OptionSpec>, about?: string): Parsed | null {
  const out: Parsed = {};
  for (const [k, s] of Object.entries(spec)) if (s.default !== undefined) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(helpText(command, spec, about));
      return null;
    }
    if (!a.startsWith('--')) throw new CliError(`unexpected argument '${a}'\n\n${helpText(command, spec, about)}`);
    let name = a.slice(2);
    let inline: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      inline = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    // own keys only: --constructor or --__proto__ is not an option inherited from Object.prototype
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!s) throw new CliError(`unknown option --${name}\n\n${helpText(command, spec, about)}`);
    if (s.type === 'boolean') {
      out[name] = inline === undefined ? true : inline !== 'false';
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new CliError(`option --${name} needs a value`);
    if (s.type === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new CliError(`option --${name} needs a number, received '${v}'`);
      out[name] = n;
    } else if (s.type === 'list') {
      const prev = out[name];
      out[name] = Array.isArray(prev) ? [...prev, v] : [v];
    } else out[name] = v;
  }
  for (const [k, s] of Object.entries(spec))
    if (s.required && out[k] === undefined) throw new CliError(`option --${k} is required\n\n${helpText(command, spec, about)}`);
  return out;
}

export function helpText(command: string, spec: Record<string, OptionSpec>, about?: string): string {
  const rows = Object.entries(spec).map(([k, s]) => {
    const arg = s.type === 'boolean' ? '' : s.type === 'number' ? ' N' : ' VALUE';
    const def = s.default !== undefined ? ` (default ${s.default})` : s.required ? ' (required)' : '';
    return `  --${(k + arg).padEnd(22)} ${s.describe}${def}`;
  });
  const examples = EXAMPLES[command];
  const ex = examples?.length ? `\n\nexample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  ${e}`).join('\n')}` : '';
  return `usage: pstal ${command} [options]\n\noptions:\n${rows.join('\n')}${about ? `\n\n${about}` : ''}${ex}`;
}
