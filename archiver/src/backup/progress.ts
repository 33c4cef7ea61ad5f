/**
 * Progress of a long operation (base backup, restore): a bar redrawn in place on a terminal,
 * structured log lines every few seconds otherwise (a pod's log, a CI job).
 */
import { Logger } from '../logger';

const MiB = 1024 * 1024;

export interface ProgressOptions {
  /** What is being done, e.g. "backup base_20261130T060000Z". */
  readonly what: string;
  readonly totalBytes: number;
  readonly log: Logger;
  /** @default process.stderr.isTTY */
  readonly terminal?: boolean;
  /** Seconds between log lines off a terminal. @default 10 */
  readonly logEverySeconds?: number;
  /** @default process.stderr.write */
  readonly write?: (text: string) => void;
}

export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastLog = Date.now();
  private readonly terminal: boolean;
  private readonly write: (text: string) => void;

  constructor(private readonly options: ProgressOptions) {
    this.terminal = options.terminal ?? process.stderr.isTTY === true;
    this.write = options.write ?? ((text) => process.stderr.write(text));
  }

  add(bytes: number): void {
    this.done += bytes;
    const now = Date.now();
    if (this.terminal) {
      if (now - this.lastDraw >= 200) {
        this.lastDraw = now;
        this.write(`\r${this.bar()}`);
      }
    } else if (now - this.lastLog >= (this.options.logEverySeconds ?? 10) * 1000) {
      this.lastLog = now;
      this.options.log.info(`${this.options.what}: in progress`, this.fields());
    }
  }

  /** Ends the bar's line on a terminal. */
  finish(): void {
    if (this.terminal) this.write(`\r${this.bar()}\n`);
  }

  fields(): Record<string, number> {
    const seconds = (Date.now() - this.started) / 1000;
    return {
      done_bytes: this.done,
      total_bytes: this.options.totalBytes,
      percent: Math.round(this.fraction() * 1000) / 10,
      mib_per_second: Math.round((this.done / MiB / Math.max(seconds, 0.001)) * 10) / 10,
      seconds: Math.round(seconds * 10) / 10,
    };
  }

  private fraction(): number {
    return this.options.totalBytes > 0 ? Math.min(1, this.done / this.options.totalBytes) : 1;
  }

  private bar(): string {
    const width = 30;
    const filled = Math.round(this.fraction() * width);
    const { percent, mib_per_second } = this.fields();
    return `${this.options.what} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent.toFixed(1)}% ${(this.done / MiB).toFixed(0)}/${(this.options.totalBytes / MiB).toFixed(0)} MiB ${mib_per_second} MiB/s`;
  }
}
