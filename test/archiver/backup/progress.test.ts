import { describe, expect, it, vi } from 'vitest';
import { Progress } from '../../../archiver/src/backup/progress';
import { Logger } from '../../../archiver/src/logger';
import { parseLogLine } from '../../../testkit/archiver';

describe('progress of a long operation', () => {
  it('redraws a bar in place on a terminal and ends its line', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const written: string[] = [];
      const progress = new Progress({ what: 'backup base_X', totalBytes: 100 * 1024 * 1024, log: new Logger('info', () => undefined), terminal: true, write: (t) => written.push(t) });
      vi.setSystemTime(1000);
      progress.add(50 * 1024 * 1024);
      progress.finish();
      expect(written[0]).toMatch(/^\rbackup base_X \[#{15}\.{15}\] 50\.0% 50\/100 MiB 50 MiB\/s$/);
      expect(written[written.length - 1]).toMatch(/\n$/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('logs structured lines every few seconds off a terminal, and draws nothing', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const lines: string[] = [];
      const written: string[] = [];
      const progress = new Progress({ what: 'restore base_X', totalBytes: 4, log: new Logger('info', (line) => lines.push(line)), terminal: false, logEverySeconds: 10, write: (t) => written.push(t) });
      progress.add(1);
      vi.setSystemTime(10_000);
      progress.add(1);
      progress.finish();
      expect(written).toEqual([]);
      expect(lines).toHaveLength(1);
      expect(parseLogLine(lines[0])).toMatchObject({ level: 'info', msg: 'restore base_X: in progress', done_bytes: '2', total_bytes: '4', percent: '50' });
    } finally {
      vi.useRealTimers();
    }
  });
});
