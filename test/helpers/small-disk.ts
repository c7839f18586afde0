/**
 * A real small filesystem (tmpfs mounted on a directory the test made) that the test can fill up and
 * free again: SQLite then fails with SQLITE_FULL as on a full /var. Unmounted by `remove()`, and at
 * process exit if a test failed before.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  /** The mount point. */
  dir: string;
  /** Writes a filler file until the filesystem has no space left. */
  fill(): void;
  /** Deletes the filler file, or gives back `kiB` of it. */
  free(kiB?: number): void;
  remove(): void;
}

/** Mounted on `at` (an empty directory, made if missing) or on a new temporary directory. */
export function mountSmallDisk(sizeKiB = 4096, at?: string): SmallDisk {
  const dir = at ?? mkdtempSync(join(tmpdir(), 'pc-disk-'));
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  let mounted = true;
  const remove = (): void => {
    if (!mounted) return;
    mounted = false;
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', () => {
    if (mounted) remove();
  });
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const block = Buffer.alloc(4096);
      try {
        for (;;) writeSync(fd, block);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        closeSync(fd);
      }
    },
    free(kiB) {
      if (kiB === undefined) rmSync(filler, { force: true });
      else truncateSync(filler, Math.max(0, statSync(filler).size - kiB * 1024));
    },
    remove,
  };
}
