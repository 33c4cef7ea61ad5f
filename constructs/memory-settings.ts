/**
 * PostgreSQL's memory settings, sized from the memory the container is given: PostgreSQL's own
 * defaults (shared_buffers 128MB, effective_cache_size 4GB) know nothing of the container, so a
 * 16Gi database would cache 128 MB and a 512Mi one would plan for 4 GB of cache it does not have.
 * The fractions are PostgreSQL's documented starting points ("Resource Consumption": a quarter of
 * memory for shared_buffers) as CloudNativePG and the pgtune family apply them.
 *
 * Each can be replaced with `config.addSetting()` (the added value comes later in the file, and
 * the last one wins).
 */

/** The settings, in MB (PostgreSQL's kB-based units rounded down to whole megabytes). */
export interface MemorySettings {
  readonly sharedBuffersMb: number;
  readonly effectiveCacheSizeMb: number;
  readonly maintenanceWorkMemMb: number;
  /** The size of the memory-backed /dev/shm for parallel queries' shared memory, in MiB. */
  readonly sharedMemoryVolumeMib: number;
}

/** The parameters `memorySettingsFor` sizes; the user may replace them. */
export const MEMORY_SETTINGS: readonly string[] = ['shared_buffers', 'effective_cache_size', 'maintenance_work_mem'];

const MIB = 2 ** 20;

/**
 * From the container's memory in bytes (its limit, which is the request unless given otherwise):
 * - shared_buffers: a quarter (at least 32 MB: PostgreSQL's own floor for a usable cache);
 * - effective_cache_size: half, the part of the rest the kernel's page cache can hold for the
 *   server (the container's limit counts the page cache too);
 * - maintenance_work_mem: a sixteenth, between 64 MB (PostgreSQL's default) and 2 GB (more does
 *   not speed up vacuum or index builds).
 * - /dev/shm: an eighth, at least 64 MiB (a container runtime's default) and at most 1 GiB;
 *   it only holds memory while a parallel query runs, and counts against the limit then.
 */
export function memorySettingsFor(memoryBytes: number): MemorySettings {
  const mib = Math.floor(memoryBytes / MIB);
  return {
    sharedBuffersMb: Math.max(32, Math.floor(mib / 4)),
    effectiveCacheSizeMb: Math.max(64, Math.floor(mib / 2)),
    maintenanceWorkMemMb: Math.min(2048, Math.max(64, Math.floor(mib / 16))),
    sharedMemoryVolumeMib: Math.min(1024, Math.max(64, Math.floor(mib / 8))),
  };
}

/** The least memory a PostgreSQL container may have: its shared memory, connections and a margin. */
export const MIN_POSTGRES_MEMORY_MIB = 256;
