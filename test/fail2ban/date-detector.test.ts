import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DateDetector } from '../../src/fail2ban/date-detector.js';

const ctx = { now: () => Date.UTC(2005, 7, 14, 12), zone: 0 };

/** The date text a detector cuts out of each line, and where. */
function cuts(detector: DateDetector, lines: string[]): Array<[string, number] | null> {
  return lines.map((l) => {
    const m = detector.find(l);
    return m ? [l.slice(m.start, m.end), m.start] : null;
  });
}

test('date spans: built-in formats after skipped leading characters, inside a line, and with a fraction', () => {
  const d = new DateDetector(null, ctx);
  assert.deepEqual(cuts(d, [
    'Jan 23 21:59:59 host sshd[1]: x',
    '[Jan 23 21:59:59] asterisk: x',
    '--2005-01-23T21:59:59.981746+01:00 app: x',
    'host: Jan 23 21:59:59 sshd[1]: x',
    'Sun Jan 23 21:59:59.011 2005 openvpn: x',
  ]), [
    ['Jan 23 21:59:59', 0],
    ['Jan 23 21:59:59', 1],
    ['2005-01-23T21:59:59.981746+01:00', 2],
    ['Jan 23 21:59:59', 6],
    ['Sun Jan 23 21:59:59.011 2005', 0],
  ]);
});

test('date spans: a datepattern with its own group marks the date with that group', () => {
  const d = new DateDetector('^\\[(%Y-%m-%d %H:%M:%S)\\] ', ctx);
  const [cut] = cuts(d, ['[2024-05-01 10:00:00] app: x']);
  assert.deepEqual(cut, ['2024-05-01 10:00:00', 1]);
  const plain = new DateDetector('^%Y-%m-%d %H:%M:%S', ctx);
  assert.deepEqual(cuts(plain, ['2024-05-01 10:00:00 h app: x']), [['2024-05-01 10:00:00', 0]]);
});
