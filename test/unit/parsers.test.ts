// The kernel and tool outputs added for the controller and the loop lookup: /proc/diskstats
// lines (captured on this machine, kernel 6.18) and `losetup --list --json` with the backing
// file's identity (util-linux 2.38, as on Debian 12).
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDiskstats, readDiskstats } from '../../src/host/diskstats';
import { hostRoot } from '../../src/host/host-root';
import { readSmall } from '../../src/host/read-small';
import { parseLoopIdentities } from '../../src/host/losetup';

describe('parseDiskstats', () => {
  it('reads IOs, bytes (512-byte sectors), the time reads and writes took, IOs in flight, time busy and weighted time in queue per MAJ:MIN', () => {
    const text = [
      '   7       0 loop0 1011 3 10160 29 161 192 2148 80 0 84 173 0 0 0 0 116 63',
      ' 254       0 vda 52110 1930 4191054 21380 97124 60337 7301282 158447 0 70916 186049 0 0 0 0 13001 6221',
      '   7       1 loop1 584 0 29892 20',
      '',
    ].join('\n');
    const d = parseDiskstats(text);
    expect(d.get('7:0')).toEqual({ readIos: 1011, readBytes: 10160 * 512, writeIos: 161, writeBytes: 2148 * 512, readTimeMs: 29, writeTimeMs: 80, timeInQueueMs: 173, inFlight: 0, ioTicksMs: 84 });
    expect(parseDiskstats(' 254       1 dm-1 515 0 7698 13580 290 0 451519 1264 4 4640 14844 0 0 0 0 0 0').get('254:1')?.inFlight).toBe(4);
    expect(d.get('254:0')?.writeIos).toBe(97124);
    expect(d.has('7:1')).toBe(false); // a short line (an old kernel's partition format) is skipped
  });
});

describe('parseLoopIdentities', () => {
  it('keys each loop device by its backing file\'s MAJ:MIN and inode', () => {
    const json = '{\n   "loopdevices": [\n      {\n         "name": "/dev/loop1",\n         "back-ino": 2146465,\n         "back-maj:min": "     254:0  "\n      },{\n         "name": "/dev/loop0",\n         "back-ino": 2146465,\n         "back-maj:min": "     254:0  "\n      }\n   ]\n}\n';
    expect([...parseLoopIdentities(json)]).toEqual([['/dev/loop1', '254:0:2146465'], ['/dev/loop0', '254:0:2146465']]);
  });

  it('is empty when no loop device is attached (losetup prints nothing)', () => {
    expect(parseLoopIdentities('').size).toBe(0);
    expect(parseLoopIdentities('\n').size).toBe(0);
  });
});

describe('readSmall on kernel seq files', () => {
  // procfs and cgroupfs hand over about a page per read(): one read of /proc/diskstats on this
  // machine (1,006 lines, 1,000 of them loop devices) returned 55 lines, and the controller saw
  // no device past them. /proc/kallsyms is a seq file of many pages on every kernel.
  it('reads a file of many pages whole', () => {
    const whole = fs.readFileSync('/proc/kallsyms', 'latin1');
    expect(whole.length).toBeGreaterThan(64 * 1024);
    expect(readSmall('/proc/kallsyms')).toBe(whole);
  });

  it('gives every device of /proc/diskstats to the controller', () => {
    const lines = fs.readFileSync('/proc/diskstats', 'latin1').split('\n').filter((l) => l.trim().split(/\s+/).length >= 14);
    expect(readDiskstats(hostRoot()).size).toBe(new Set(lines.map((l) => l.trim().split(/\s+/).slice(0, 2).join(':'))).size);
  });

  it('reads a regular file that fills its buffer several times, and a short one after it', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qosd-read-')), 'big');
    const text = Array.from({ length: 20_000 }, (_, i) => `   7 ${String(i).padStart(7)} loop${i} ${i} 0 0 0 0 0 0 0 0 0 0`).join('\n');
    fs.writeFileSync(file, text, 'latin1');
    expect(text.length).toBeGreaterThan(4 * 64 * 1024);
    expect(readSmall(file)).toBe(text);
    fs.writeFileSync(file, '7:0 100\n');
    expect(readSmall(file)).toBe('7:0 100\n');
    fs.rmSync(path.dirname(file), { recursive: true });
  });

  it('reads a short file in one piece and an empty one as empty', () => {
    expect(readSmall('/proc/self/stat')).toMatch(/^\d+ \(/);
    expect(readSmall('/dev/null')).toBe('');
  });
});
