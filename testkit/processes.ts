/**
 * Processes started by tests and benchmarks, found and ended by what they name, and scratch
 * directories that end everything started inside them.
 *
 * A fresh temporary directory (mkdtemp) is named only by processes started for it: its path in a
 * process's command line or environment identifies what a run left behind, without pid files
 * and without ending anyone else's processes (never by a broad name).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { giveToPostgres } from './postgres';

/** Processes (pid, command line) whose command line or environment contains `needle`. */
export function processesMentioning(needle: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      let environ = '';
      try {
        environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
      } catch {
        // a process of another user we may not read (we run as root: rare)
      }
      if (cmdline.includes(needle) || environ.includes(needle)) found.push({ pid, cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/**
 * Ends, by pid, the processes whose command line or environment contains `needle` (a fresh
 * temporary directory: only processes a test or benchmark started can name it): postmasters with
 * SIGQUIT (immediate shutdown), the rest with SIGKILL. Returns what it ended.
 */
export function killMentioning(needle: string): string[] {
  const killed: string[] = [];
  for (let round = 0; round < 3; round++) {
    const left = processesMentioning(needle);
    if (left.length === 0) break;
    for (const { pid, cmdline } of left) {
      const postmaster = /\bpostgres\b.*-D /.test(cmdline);
      try {
        process.kill(pid, postmaster ? 'SIGQUIT' : 'SIGKILL');
        killed.push(`${pid} ${cmdline.slice(0, 120)}`);
      } catch {
        // gone
      }
    }
    execFileSync('sleep', ['0.5']);
  }
  return killed;
}

/** Whether a process runs (signal 0). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const live = new Set<Scratch>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', () => {
    for (const scratch of live) scratch.cleanupSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const scratch of live) scratch.cleanupSync();
      process.exit(130);
    });
  }
}

/**
 * A scratch directory and everything started inside it. The directory is a fresh mkdtemp owned
 * by the postgres user (PostgreSQL and the tools PostgreSQL runs write there); `cleanupSync()` —
 * also run on process exit, SIGINT and SIGTERM — runs the registered cleanups, then ends every
 * process whose command line or environment names the directory (killMentioning), then removes
 * the directory.
 */
export class Scratch {
  public readonly dir: string;
  private readonly cleanups: (() => void)[] = [];
  private cleaned = false;

  constructor(prefix: string) {
    installHooks();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    fs.chmodSync(this.dir, 0o755);
    giveToPostgres(this.dir);
    live.add(this);
  }

  /** A new directory under the scratch directory, owned by postgres. */
  mkdir(name: string): string {
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    giveToPostgres(dir);
    return dir;
  }

  /** Runs `fn` at cleanup (last registered, first run). Errors are ignored. */
  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Processes still running that were started for this scratch directory. */
  leftovers(): { pid: number; cmdline: string }[] {
    return processesMentioning(this.dir);
  }

  /** Ends leftover processes by pid (see killMentioning). */
  killLeftovers(): string[] {
    return killMentioning(this.dir);
  }

  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    live.delete(this);
    for (const fn of this.cleanups.reverse()) {
      try {
        fn();
      } catch {
        // best effort
      }
    }
    try {
      this.killLeftovers();
    } catch {
      // best effort
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
