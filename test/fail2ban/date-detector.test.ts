import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DATE_SEARCH_CHARS, DateDetector } from '../../src/fail2ban/date-detector.js';

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

test('date spans: a long line is searched for its date in its first DATE_SEARCH_CHARS characters only', () => {
  const d = new DateDetector(null, ctx);
  const pad = (n: number) => 'x '.repeat(n / 2);
  const deep = pad(DATE_SEARCH_CHARS);
  const straddling = `${pad(DATE_SEARCH_CHARS - 10)}Jan 23 21:59:59 ${pad(40)}`;
  assert.deepEqual(cuts(d, [
    `Jan 23 21:59:59 host sshd[1]: ${pad(16_000)}`,
    `host: ${pad(500)}Jan 23 21:59:59 ${pad(16_000)}`,
    `host: ${deep}Jan 23 21:59:59 sshd[1]: x`,
    straddling,
  ]), [
    ['Jan 23 21:59:59', 0],
    ['Jan 23 21:59:59', 506],
    // In the message, where whoever sent it put it.
    null,
    // Cut at "Jan 23 21:5": the date the template sees is not the line's.
    null,
  ]);
});
