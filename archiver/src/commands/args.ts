/**
 * The command-line parsing the commands with options share (backups.ts, retention.ts). A module
 * of its own so that each command bundle takes only this, not another command's module.
 */
import { UsageError } from '../errors';

export interface ParsedArgs {
  readonly positional: string[];
  readonly flags: Map<string, string | true>;
}

/** `--name value`, `--name=value` and bare `--flag`s; refuses what `spec` does not list. */
export function parseArgs(command: string, args: readonly string[], spec: Readonly<Record<string, 'value' | 'flag'>>): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const kind = spec[name];
    if (!kind) throw new UsageError(`${command}: unknown option --${name}; run 'archiver ${command} --help'`);
    if (kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`${command}: --${name} takes no value`);
      flags.set(name, true);
    } else {
      const value = inline ?? args[++i];
      if (value === undefined) throw new UsageError(`${command}: --${name} needs a value`);
      flags.set(name, value);
    }
  }
  return { positional, flags };
}
