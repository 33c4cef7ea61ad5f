/**
 * Structured log lines (logfmt) on stderr, which PostgreSQL copies into its server log for
 * archive_command and restore_command. Never pass credentials as fields.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export type Fields = Record<string, string | number | boolean | undefined>;

function quote(value: string | number | boolean): string {
  const text = String(value);
  return /^[A-Za-z0-9_.:/@+-]+$/.test(text) ? text : JSON.stringify(text);
}

export function formatLine(level: LogLevel, msg: string, fields: Fields = {}, now: Date = new Date()): string {
  const parts = [`time=${now.toISOString()}`, `level=${level}`, `component=archiver`, `msg=${quote(msg)}`];
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) parts.push(`${key}=${quote(value)}`);
  }
  return `${parts.join(' ')}\n`;
}

export class Logger {
  constructor(
    private readonly minimum: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
    private readonly context: Fields = {},
  ) {}

  child(context: Fields): Logger {
    return new Logger(this.minimum, this.write, { ...this.context, ...context });
  }

  log(level: LogLevel, msg: string, fields: Fields = {}): void {
    if (RANK[level] >= RANK[this.minimum]) this.write(formatLine(level, msg, { ...this.context, ...fields }));
  }

  debug(msg: string, fields?: Fields): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log('error', msg, fields);
  }
}
