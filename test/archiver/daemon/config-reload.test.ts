/**
 * What the sidecar's configuration watcher (archiver/src/daemon/config-reload.ts) reads from a
 * ConfigMap mount laid out as the kubelet lays it out, and how it behaves while no server answers.
 * The reload itself, against a real PostgreSQL 15 in the rendered pod, is specified in
 * test/constructs/config-reload.real-postgres.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigReloadWatcher, hashConfigFiles, readConfigFiles, readWatchedFiles } from '../../../archiver/src/daemon/config-reload';
import type { MetricsRecorder } from '../../../archiver/src/metrics/recorder';
import { NO_METRICS } from '../../../archiver/src/metrics/recorder';
import { capturingLogger } from '../../../testkit/doubles';
import { testScratch } from '../../../testkit/scratch';

const scratch = testScratch('config-reload-');

/** A mount as the kubelet's AtomicWriter writes it: `..<version>/` with the files, `..data` -> it, `name` -> `..data/name`. */
function kubeletMount(files: Record<string, string>): { dir: string; swap(next: Record<string, string>): void } {
  const dir = fs.mkdtempSync(path.join(scratch.dir, 'mount-'));
  let version = 0;
  const write = (contents: Record<string, string>) => {
    const name = `..2026_11_30_15_00_00.${++version}`;
    const previous = fs.existsSync(path.join(dir, '..data')) ? fs.readlinkSync(path.join(dir, '..data')) : undefined;
    fs.mkdirSync(path.join(dir, name));
    for (const [file, text] of Object.entries(contents)) fs.writeFileSync(path.join(dir, name, file), text);
    fs.symlinkSync(name, path.join(dir, '..data_tmp'));
    fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    for (const file of Object.keys(contents)) if (!fs.existsSync(path.join(dir, file))) fs.symlinkSync(`..data/${file}`, path.join(dir, file));
    if (previous) fs.rmSync(path.join(dir, previous), { recursive: true });
  };
  write(files);
  return { dir, swap: write };
}

describe('reading a kubelet ConfigMap mount', () => {
  it('reads the files of the version ..data points to, without the kubelet\'s own entries', () => {
    const mount = kubeletMount({ 'postgresql.conf': 'archive_timeout = 60\n', 'pg_hba.conf': 'local all all peer\n' });
    expect([...readConfigFiles(mount.dir)]).toStrictEqual([
      ['pg_hba.conf', 'local all all peer\n'],
      ['postgresql.conf', 'archive_timeout = 60\n'],
    ]);
  });

  it('sees a swap of ..data as a new hash, and the same contents as the same hash', () => {
    const mount = kubeletMount({ 'postgresql.conf': 'archive_timeout = 60\n' });
    const first = hashConfigFiles(readConfigFiles(mount.dir));
    mount.swap({ 'postgresql.conf': 'archive_timeout = 60\n' });
    expect(hashConfigFiles(readConfigFiles(mount.dir))).toBe(first);
    mount.swap({ 'postgresql.conf': 'archive_timeout = 30\n' });
    expect(hashConfigFiles(readConfigFiles(mount.dir))).not.toBe(first);
  });

  it('watches the TLS Secret\'s mount with the ConfigMap: a renewed certificate is a new hash, its files named tls/<name>', () => {
    const config = kubeletMount({ 'postgresql.conf': 'ssl = on\n' });
    const tls = kubeletMount({ 'tls.crt': 'certificate 1', 'tls.key': 'key 1' });
    const { files } = readWatchedFiles(config.dir, tls.dir);
    expect([...files.keys()]).toStrictEqual(['postgresql.conf', 'tls/tls.crt', 'tls/tls.key']);
    const first = hashConfigFiles(files);
    tls.swap({ 'tls.crt': 'certificate 2', 'tls.key': 'key 2' });
    expect(hashConfigFiles(readWatchedFiles(config.dir, tls.dir).files)).not.toBe(first);
    // Without a TLS directory: the ConfigMap alone.
    expect([...readWatchedFiles(config.dir).files.keys()]).toStrictEqual(['postgresql.conf']);
  });

  it('reads a plain directory (no ..data) as it is', () => {
    const dir = fs.mkdtempSync(path.join(scratch.dir, 'plain-'));
    fs.writeFileSync(path.join(dir, 'postgresql.conf'), 'port = 5432\n');
    expect([...readConfigFiles(dir)]).toStrictEqual([['postgresql.conf', 'port = 5432\n']]);
  });
});

describe('the watcher while no server answers', () => {
  it('never throws, counts nothing before its first reload, and logs a failure once, not at every look', async () => {
    const mount = kubeletMount({ 'postgresql.conf': 'archive_timeout = 60\n' });
    const { log, lines } = capturingLogger();
    const outcomes: unknown[] = [];
    const metrics: MetricsRecorder = { ...NO_METRICS, configReloaded: (outcome) => void outcomes.push(outcome) };
    // A socket directory where no server listens.
    const watcher = new ConfigReloadWatcher({ log, configDir: mount.dir, connection: { host: fs.mkdtempSync(path.join(scratch.dir, 'no-server-')), port: 1 }, metrics });
    for (let i = 0; i < 3; i++) expect(await watcher.look()).toBeUndefined();
    mount.swap({ 'postgresql.conf': 'archive_timeout = 30\n' });
    expect(await watcher.look()).toBeUndefined();
    // A server that starts reads the files itself: until a first reload worked, nothing is a failure.
    expect(outcomes).toStrictEqual([]);
    expect(lines.filter((line) => line.msg === 'cannot reload the configuration yet (trying again)')).toHaveLength(1);
    expect(lines.find((line) => line.msg === 'cannot reload the configuration yet (trying again)')).toMatchObject({ level: 'debug' });
  });

  it('keeps watching the ConfigMap when the TLS Secret\'s files cannot be read, and says so once', async () => {
    const mount = kubeletMount({ 'postgresql.conf': 'ssl = on\n' });
    const { log, lines } = capturingLogger();
    const tlsDir = path.join(scratch.dir, 'no-such-tls-mount');
    expect(readWatchedFiles(mount.dir, tlsDir)).toMatchObject({ files: new Map([['postgresql.conf', 'ssl = on\n']]), tlsError: { code: 'ENOENT' } });
    const watcher = new ConfigReloadWatcher({ log, configDir: mount.dir, tlsDir, connection: { host: fs.mkdtempSync(path.join(scratch.dir, 'no-server-')), port: 1 } });
    expect(await watcher.look()).toBeUndefined();
    expect(await watcher.look()).toBeUndefined();
    // The reload was still tried (no server answers here): the ConfigMap's watch goes on.
    expect(lines.filter((line) => line.msg === 'cannot reload the configuration yet (trying again)')).toHaveLength(1);
    expect(lines.filter((line) => String(line.msg).startsWith("cannot read the TLS Secret's files"))).toHaveLength(1);
    expect(lines.filter((line) => line.msg === 'cannot read the configuration files (trying again)')).toHaveLength(0);
  });

  it('keeps looking after a mount it cannot read (the previous version removed mid-look), and says so once', async () => {
    const { log, lines } = capturingLogger();
    const watcher = new ConfigReloadWatcher({ log, configDir: path.join(scratch.dir, 'no-such-mount'), connection: { host: scratch.dir, port: 1 } });
    expect(await watcher.look()).toBeUndefined();
    expect(await watcher.look()).toBeUndefined();
    expect(lines.filter((line) => line.msg === 'cannot read the configuration files (trying again)')).toHaveLength(1);
  });
});
