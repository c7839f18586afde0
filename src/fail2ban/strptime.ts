/**
 * fail2ban `datepattern`s are Python regexes with strptime-style fields
 * (`%Y-%m-%d %H:%M:%S`), plus fail2ban's exact-width `%Ex…` variants and
 * `%k`/`%l` (hour without leading zero). This file turns the fields into
 * named regex groups and the groups of a match back into a time, with
 * fail2ban's assumptions: no year means this year (last year if that would
 * be more than a day ahead), no date means today (yesterday if ahead), an
 * explicit zone (`%z`, `%Z`) or the jail's `logtimezone` wins over local time.
 */

export class DatePatternError extends Error {
  override name = 'DatePatternError';
}

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const ZONE_NAME = '[A-Z](?:[A-Z]{2,4})?';
const OFFSET = String.raw`[+-][01]\d(?::?\d{2})?`;

/**
 * Years fail2ban accepts for `%ExY`: from 2000 up to a few years ahead of the
 * real clock (not a test or replay clock), by decade prefix.
 */
function exactYear(): string {
  const last = new Date().getFullYear() + 3;
  const decades: string[] = [];
  for (let y = 2000; y <= last; y += 10) decades.push(String(y).slice(0, 3));
  // Group by the common first two digits: 200,201,202 → 20[0-2]\d
  const byCentury = new Map<string, string[]>();
  for (const d of decades) {
    const c = d.slice(0, 2);
    if (!byCentury.has(c)) byCentury.set(c, []);
    byCentury.get(c)!.push(d[2]!);
  }
  const parts = [...byCentury].map(([c, ds]) => `${c}[${ds.join('')}]`);
  return `(?P<Y>(?:${parts.join('|')})\\d)`;
}

function directives(): Record<string, string> {
  const alt = (name: string, words: string[]): string => `(?P<${name}>${[...words].sort((a, b) => b.length - a.length).join('|')})`;
  return {
    a: alt('a', DAYS.map((d) => d.slice(0, 3))),
    A: alt('A', DAYS),
    b: alt('b', MONTHS.map((m) => m.slice(0, 3))),
    B: alt('B', MONTHS),
    d: String.raw`(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])`,
    m: String.raw`(?P<m>1[0-2]|0[1-9]|[1-9])`,
    y: String.raw`(?P<y>\d\d)`,
    Y: String.raw`(?P<Y>\d{4})`,
    H: String.raw`(?P<H>2[0-3]|[01]\d|\d)`,
    k: String.raw` ?(?P<H>2[0-3]|[01]\d|\d)`,
    I: String.raw`(?P<I>1[0-2]|0[1-9]|[1-9])`,
    l: String.raw` ?(?P<I>1[0-2]|[1-9])`,
    M: String.raw`(?P<M>[0-5]\d|\d)`,
    S: String.raw`(?P<S>6[01]|[0-5]\d|\d)`,
    f: String.raw`(?P<f>\d{1,6})`,
    p: '(?P<p>am|pm)',
    j: String.raw`(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`,
    U: String.raw`(?P<U>5[0-3]|[0-4]\d|\d)`,
    W: String.raw`(?P<W>5[0-3]|[0-4]\d|\d)`,
    w: '(?P<w>[0-6])',
    u: '(?P<u>[1-7])',
    z: `(?P<z>Z|UTC|GMT|${OFFSET})`,
    Z: '(?P<Z>Z|[A-Z]{3,5})',
    '%': '%',
    c: '', x: '', X: '', // expanded below
    ExY: exactYear(),
    Exy: String.raw`(?P<y>\d\d)`,
    Exd: String.raw`(?P<d>3[01]|[12]\d|0[1-9])`,
    Exm: String.raw`(?P<m>1[0-2]|0[1-9])`,
    ExH: String.raw`(?P<H>2[0-3]|[01]\d)`,
    Exk: String.raw` ?(?P<H>2[0-3]|[01]\d|\d)`,
    Exl: String.raw` ?(?P<I>1[0-2]|\d)`,
    ExM: String.raw`(?P<M>[0-5]\d)`,
    ExS: String.raw`(?P<S>6[01]|[0-5]\d)`,
    ExZ: `(?P<Z>${ZONE_NAME})`,
    Exz: `(?P<z>(?:${ZONE_NAME})?${OFFSET}|${ZONE_NAME})`,
  };
}

/** C-locale composites. */
const COMPOSITE: Record<string, string> = { c: '%a %b %d %H:%M:%S %Y', x: '%m/%d/%y', X: '%H:%M:%S' };

/** Human name of a field, for template names shown by test-filter (`%Y` → `Year`). */
const FIELD_NAMES: Record<string, string> = {
  a: 'DAY', A: 'DAYNAME', b: 'MON', B: 'MONTH', d: 'Day', H: '24hour', I: '12hour', j: 'Yearday', m: 'Month',
  M: 'Minute', p: 'AMPM', S: 'Second', U: 'Yearweek', w: 'Weekday', W: 'Yearweek', y: 'Year2', Y: 'Year',
  z: 'Zone offset', f: 'Microseconds', Z: 'Zone name', '%': '%',
};

export interface ExpandedPattern {
  /** Python regex text. */
  regex: string;
  /** Display name (fields spelled out). */
  name: string;
  /** Uses names of days, months or AM/PM: matched case-insensitively. */
  alpha: boolean;
}

/** Replaces the `%` fields of a date pattern by regex groups; unknown fields are errors. */
export function expandDatePattern(pattern: string): ExpandedPattern {
  const table = directives();
  let regex = '';
  let name = '';
  let alpha = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c !== '%') { regex += c; name += c; continue; }
    const ex = /^Ex[YydmHkMlSZz]/.exec(pattern.slice(i + 1));
    const key = ex ? ex[0] : pattern[i + 1];
    if (key === undefined || !(key in table)) {
      throw new DatePatternError(`unknown date field %${key ?? ''} in datepattern ${JSON.stringify(pattern)} (write %% for a literal percent sign)`);
    }
    i += key.length;
    if (key in COMPOSITE) {
      const inner = expandDatePattern(COMPOSITE[key]!);
      regex += inner.regex;
      name += inner.name;
      alpha ||= inner.alpha;
      continue;
    }
    if ('aAbBp'.includes(key)) alpha = true;
    regex += table[key]!;
    const base = key.startsWith('Ex') ? key.slice(2) : key;
    name += key.startsWith('Ex') ? `Ex${FIELD_NAMES[base] ?? `%${base}`}` : FIELD_NAMES[key] ?? `%${key}`;
  }
  return { regex, name, alpha };
}

/** Offsets of the zone abbreviations fail2ban accepts, in minutes east of UTC. */
const ZONES: Record<string, number> = (() => {
  const table: Array<[number, string]> = [
    [-12, 'Y'], [-11, 'X NUT SST'], [-10, 'W CKT HAST HST TAHT TKT'], [-9, 'V AKST GAMT GIT HADT HNY'],
    [-8, 'U AKDT CIST HAY HNP PST PT'], [-7, 'T HAP HNR MST PDT'], [-6, 'S CST EAST GALT HAR HNC MDT'],
    [-5, 'R CDT COT EASST ECT EST ET HAC HNE PET'], [-4, 'Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT'],
    [-3, 'P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT'], [-2, 'O BRST FNT PMDT UYST WGST'],
    [-1, 'N AZOT CVT EGT'], [0, 'Z EGST GMT UTC WET WT'], [1, 'A CET DFT WAT WEDT WEST'],
    [2, 'B CAT CEDT CEST EET SAST WAST'], [3, 'C EAT EEDT EEST IDT MSK'], [4, 'D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT'],
    [5, 'E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT'], [6, 'F ALMT BIOT BTT IOT KGT NOVT OMST YEKST'],
    [7, 'G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB'], [8, 'H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST'],
    [9, 'I AWDT IRKST JST KST PWT TLT WDT WIT YAKT'], [10, 'K AEST ChST PGT VLAT YAKST YAPT'],
    [11, 'L AEDT LHDT MAGT NCT PONT SBT VLAST VUT'], [12, 'M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT'],
    [13, 'FJST NZDT'], [11.5, 'NFT'], [10.5, 'ACDT LHST'], [9.5, 'ACST'], [6.5, 'CCT MMT'], [5.75, 'NPT'],
    [5.5, 'SLT'], [4.5, 'AFT IRDT'], [3.5, 'IRST'], [-2.5, 'HAT NDT'], [-3.5, 'HNT NST NT'], [-4.5, 'HLV VET'], [-9.5, 'MART MIT'],
  ];
  const out: Record<string, number> = { '': 0 };
  for (const [hours, names] of table) for (const n of names.split(' ')) out[n] = Math.round(hours * 60);
  return out;
})();

/** `UTC`, `CET`, `+0200`, `UTC-05:00`, `EST+1` → minutes east of UTC; throws on anything else. */
export function zoneOffset(text: string): number {
  const m = /^([A-Z](?:[A-Za-z]{2,4})?)?([+-][01]\d(?::?\d{2})?)?$/.exec(text);
  if (!m || (m[1] !== undefined && !(m[1] in ZONES))) throw new DatePatternError(`unknown or unsupported time zone ${JSON.stringify(text)}; use UTC, UTC+HHMM or a zone abbreviation like CET`);
  const base = ZONES[m[1] ?? '']!;
  const off = m[2];
  if (!off) return base;
  const sign = off[0] === '-' ? -1 : 1;
  if (off.length <= 3) return base + Number(off) * 60;
  const digits = off.slice(1).replace(':', '');
  return base + sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)));
}

/** A naive date-time (no zone) as milliseconds, for fail2ban's naive comparisons. */
function naive(y: number, mo: number, d: number, h: number, mi: number, s: number): number {
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

function localNaive(ms: number): number {
  const t = new Date(ms);
  return naive(t.getFullYear(), t.getMonth() + 1, t.getDate(), t.getHours(), t.getMinutes(), t.getSeconds());
}

/** Seconds since the epoch for the fields of a date match, or null when they make no valid date. */
export function timeFromFields(g: Record<string, string | undefined>, nowMs: number, defaultZone: number | null): number | null {
  let year: number | null = null, month: number | null = null, day: number | null = null;
  let hour = 0, minute = 0, second = 0;
  let offset: number | null = null;
  let julian: number | null = null;
  const now = new Date(nowMs);
  for (const [key, val] of Object.entries(g)) {
    if (val === undefined) continue;
    switch (key) {
      case 'y': year = Number(val); if (year <= 2000) year += 2000; break;
      case 'Y': year = Number(val); break;
      case 'm': month = Number(val); break;
      case 'B': month = MONTHS.indexOf(val.toLowerCase()) + 1; break;
      case 'b': month = MONTHS.findIndex((m) => m.startsWith(val.toLowerCase())) + 1; break;
      case 'd': day = Number(val); break;
      case 'H': hour = Number(val); break;
      case 'I': {
        hour = Number(val);
        const ampm = (g.p ?? '').toLowerCase();
        if (ampm === 'pm') { if (hour !== 12) hour += 12; }
        else if (hour === 12) hour = 0;
        break;
      }
      case 'M': minute = Number(val); break;
      case 'S': second = Number(val); break;
      case 'j': julian = Number(val); break;
      case 'z': case 'Z':
        offset = val === 'Z' || val === 'UTC' || val === 'GMT' ? 0 : zoneOffsetOrNull(val);
        if (offset === null) return null;
        break;
    }
  }
  let assumeYear = false;
  if (year === null) { year = now.getFullYear(); assumeYear = true; }
  if ((month === null || day === null) && julian !== null) {
    const t = new Date(Date.UTC(year, 0, julian));
    year = t.getUTCFullYear(); month = t.getUTCMonth() + 1; day = t.getUTCDate();
  }
  let assumeToday = false;
  if (month === null && day === null) { month = now.getMonth() + 1; day = now.getDate(); assumeToday = true; }
  if (month === null || day === null || month < 1 || month > 12 || day < 1) return null;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return null;
  // Python's datetime refuses a leap second (60) as well.
  if (hour > 23 || minute > 59 || second > 59) return null;
  let result = naive(year, month, day, hour, minute, second);
  if (offset === null && defaultZone !== null) offset = defaultZone;
  if (offset !== null) result -= offset * 60_000;
  const nowNaive = localNaive(nowMs);
  if (assumeToday && result > nowNaive) result -= 86_400_000;
  if (assumeYear && result > nowNaive + 86_400_000) {
    const t = new Date(result);
    if (day > new Date(Date.UTC(year - 1, month, 0)).getUTCDate()) return null;
    result = Date.UTC(year - 1, month - 1, day, t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds());
  }
  if (offset !== null) return result / 1000;
  const t = new Date(result);
  return new Date(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate(), t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds()).getTime() / 1000;
}

function zoneOffsetOrNull(text: string): number | null {
  try {
    return zoneOffset(text);
  } catch {
    return null;
  }
}
