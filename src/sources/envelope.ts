import type { LogLine } from '../core/types.js';

/**
 * Parses a line's envelope once — syslog headers (RFC 3164 with or without
 * year, RFC 5424, ISO 8601 timestamps) and the bare timestamp prefixes of
 * services that write their own files (Asterisk, nginx, Apache, OpenVPN, exim),
 * and daemontools/s6 multilog's TAI64N labels — into time, host, program, pid
 * and message.
 *
 * Hand-written rather than one big regex: it runs on every line, and an
 * attacker-controlled line must never cost more than one linear pass.
 */

export interface EnvelopeOptions {
  /** Reference time (ms) for lines without a year; also the fallback time. Default: Date.now(). */
  now?: () => number;
}

// Three-letter names by their packed character codes: no substring or hash lookup per line.
const pack3 = (name: string): number => (name.charCodeAt(0) << 16) | (name.charCodeAt(1) << 8) | name.charCodeAt(2);
const MONTHS = new Map(['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].map((m, i) => [pack3(m), i]));
const WEEKDAYS = new Set(['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map(pack3));

function packedAt(s: string, i: number): number {
  return (s.charCodeAt(i) << 16) | (s.charCodeAt(i + 1) << 8) | s.charCodeAt(i + 2);
}

export class EnvelopeParser {
  private readonly now: () => number;
  // Most log lines share their minute with the previous line: cache the epoch of that minute.
  private minuteKey = -1;
  private minuteMs = 0;
  // The current year for yearless dates, and the local-time span it covers.
  private currentYear = 0;
  private yearStart = 0;
  private yearEnd = 0;

  constructor(options: EnvelopeOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  parse(raw: string, source: string): LogLine {
    const line: LogLine = { raw, time: 0, timeFromLine: false, host: null, program: null, pid: null, message: raw, source };
    let pos = 0;
    // Syslog priority as it arrives over the network: <PRI>
    if (raw.charCodeAt(0) === 60 /* < */) {
      const close = raw.indexOf('>', 1);
      if (close > 1 && close <= 4 && isDigits(raw, 1, close)) pos = close + 1;
    }
    if (pos > 0 && raw.charCodeAt(pos) === 49 /* 1 */ && raw.charCodeAt(pos + 1) === 32) {
      if (this.parse5424(raw, pos + 2, line)) return line;
    }
    const after = this.timestampAt(raw, pos, line);
    if (after < 0) {
      line.time = this.now();
      return line;
    }
    line.timeFromLine = true;
    if (line.program === null && line.host === null && this.bare) {
      if (!this.parseBareTag(raw, after, line)) line.message = raw.slice(after);
      return line;
    }
    this.parseHostProgram(raw, after, line);
    return line;
  }

  // The previous line's timestamp text, up to and including the space after it, and what it parsed to.
  private stamp = '';
  private stampTime = 0;
  private stampBare = false;
  private stampBareTag: 'none' | 'program' | 'host-program-pid' = 'none';
  private stampUses = 0;

  /**
   * parseTimestamp, skipped when the line starts with the same timestamp text as the line before: logs
   * are written a second (or a millisecond) at a time, and comparing ~16 characters costs a tenth of
   * parsing them. A yearless date's year still comes from the clock: the cached parse is dropped
   * every 1024 lines, as reference() reads the clock again.
   */
  private timestampAt(s: string, pos: number, line: LogLine): number {
    const stamp = this.stamp;
    if (stamp.length > 0 && (++this.stampUses & 1023) !== 0 && s.startsWith(stamp, pos)) {
      line.time = this.stampTime;
      this.bare = this.stampBare;
      this.bareTag = this.stampBareTag;
      return skipSpaces(s, pos + stamp.length);
    }
    const after = this.parseTimestamp(s, pos, line);
    this.stamp = '';
    // Only a timestamp that ends at a space (not `]`, not the line's end) is cached: the space bounds the text compared.
    if (after > pos && s.charCodeAt(pos) !== 91 /* [ */) {
      let end = after;
      while (end > pos && s.charCodeAt(end - 1) === 32) end--;
      if (end < after) {
        this.stamp = s.slice(pos, end + 1);
        this.stampTime = line.time;
        this.stampBare = this.bare;
        this.stampBareTag = this.bareTag;
      }
    }
    return after;
  }

  /** Set by parseTimestamp: the timestamp was a bare-format one (no syslog host/program follows). */
  private bare = false;
  /**
   * Set by parseTimestamp for bare timestamps that may still be followed by a tag:
   * multilog writes `@TAI64N prog: msg`; rsyslog templates write `YYYY-MM-DD HH:MM:SS host prog[pid]: msg`.
   */
  private bareTag: 'none' | 'program' | 'host-program-pid' = 'none';

  /** Parses a leading timestamp; returns the index after it (and following spaces), or -1. */
  private parseTimestamp(s: string, pos: number, line: LogLine): number {
    this.bare = false;
    this.bareTag = 'none';
    const c = s.charCodeAt(pos);
    if (c === 64 /* @ */) return this.parseTai64n(s, pos, line);
    // [timestamp] as Asterisk and Apache write it.
    if (c === 91 /* [ */) {
      const close = s.indexOf(']', pos + 1);
      if (close < 0 || close - pos > 40) return -1;
      const inner = this.parseTimestamp(s.slice(0, close), pos + 1, line);
      if (inner !== close) return -1;
      this.bare = true;
      this.bareTag = 'none';
      return skipSpaces(s, close + 1);
    }
    if (c >= 48 && c <= 57) return this.parseNumericDate(s, pos, line);
    if (c >= 65 && c <= 90) return this.parseWordDate(s, pos, line);
    return -1;
  }

  /** `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±HH:MM]` and `YYYY/MM/DD HH:MM:SS` (nginx). */
  private parseNumericDate(s: string, pos: number, line: LogLine): number {
    if (s.length < pos + 19) return -1;
    const sep = s.charCodeAt(pos + 4);
    if ((sep !== 45 && sep !== 47) || s.charCodeAt(pos + 7) !== sep) return -1;
    const year = num(s, pos, 4), month = num(s, pos + 5, 2), day = num(s, pos + 8, 2);
    const t = s.charCodeAt(pos + 10);
    if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || (t !== 84 && t !== 32)) return -1;
    const hh = num(s, pos + 11, 2), mm = num(s, pos + 14, 2), ss = num(s, pos + 17, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || s.charCodeAt(pos + 13) !== 58 || s.charCodeAt(pos + 16) !== 58) return -1;
    let i = pos + 19;
    let ms = 0;
    if (s.charCodeAt(i) === 46 || s.charCodeAt(i) === 44) {
      const start = ++i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      if (i === start) return -1;
      ms = Math.floor(Number(`0.${s.slice(start, i)}`) * 1000);
    }
    const zc = s.charCodeAt(i);
    if (zc === 90 /* Z */) {
      line.time = Date.UTC(year, month - 1, day, hh, mm, ss, ms);
      i++;
    } else if ((zc === 43 || zc === 45) && isDigit(s.charCodeAt(i + 1))) {
      const oh = num(s, i + 1, 2);
      const om = s.charCodeAt(i + 3) === 58 ? num(s, i + 4, 2) : num(s, i + 3, 2);
      if (oh < 0 || om < 0) return -1;
      const offset = (oh * 60 + om) * 60_000 * (zc === 43 ? 1 : -1);
      line.time = Date.UTC(year, month - 1, day, hh, mm, ss, ms) - offset;
      i += s.charCodeAt(i + 3) === 58 ? 6 : 5;
    } else {
      line.time = this.localMinute(year, month - 1, day, hh, mm) + ss * 1000 + ms;
    }
    if (i < s.length && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 93) return -1;
    // A date written with '/' or a space before the time is a service's own format, not syslog.
    this.bare = sep === 47 || t === 32;
    if (sep === 45 && t === 32) this.bareTag = 'host-program-pid';
    return s.charCodeAt(i) === 93 ? i : skipSpaces(s, i);
  }

  /**
   * `Mmm dd HH:MM:SS[.frac] [YYYY]`, `Mmm dd YYYY HH:MM:SS`, and ctime style
   * `Www Mmm dd HH:MM:SS[.frac] YYYY` (OpenVPN's own log, Apache's error log).
   */
  private parseWordDate(s: string, pos: number, line: LogLine): number {
    let i = pos;
    let ctime = false;
    if (s.charCodeAt(i + 3) === 32 && WEEKDAYS.has(packedAt(s, i))) {
      ctime = true;
      i += 4;
    }
    const month = MONTHS.get(packedAt(s, i));
    if (month === undefined || s.charCodeAt(i + 3) !== 32) return -1;
    i = skipSpaces(s, i + 4);
    let day = 0;
    const dayStart = i;
    while (i < s.length && isDigit(s.charCodeAt(i)) && i - dayStart < 2) day = day * 10 + s.charCodeAt(i++) - 48;
    if (i === dayStart || day < 1 || day > 31 || s.charCodeAt(i) !== 32) return -1;
    i = skipSpaces(s, i);
    let year = -1;
    if (isDigit(s.charCodeAt(i)) && s.charCodeAt(i + 4) === 32 && s.charCodeAt(i + 2) !== 58) {
      year = num(s, i, 4);
      i = skipSpaces(s, i + 5);
    }
    const hh = num(s, i, 2), mm = num(s, i + 3, 2), ss = num(s, i + 6, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || s.charCodeAt(i + 2) !== 58 || s.charCodeAt(i + 5) !== 58) return -1;
    i += 8;
    let ms = 0;
    if (s.charCodeAt(i) === 46) {
      const start = ++i;
      while (i < s.length && isDigit(s.charCodeAt(i))) i++;
      ms = Math.floor(Number(`0.${s.slice(start, i)}`) * 1000);
    }
    if (year < 0 && s.charCodeAt(i) === 32 && isDigit(s.charCodeAt(i + 1)) && num(s, i + 1, 4) >= 1970 && (i + 5 >= s.length || s.charCodeAt(i + 5) === 32 || s.charCodeAt(i + 5) === 93)) {
      year = num(s, i + 1, 4);
      i += 5;
    }
    if (i < s.length && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 93) return -1;
    if (year < 0) {
      const ref = this.reference(month, day, hh, mm);
      if (ref < this.yearStart || ref >= this.yearEnd) {
        this.currentYear = new Date(ref).getFullYear();
        this.yearStart = new Date(this.currentYear, 0, 1).getTime();
        this.yearEnd = new Date(this.currentYear + 1, 0, 1).getTime();
      }
      year = this.currentYear;
      const t = this.localMinute(year, month, day, hh, mm) + ss * 1000 + ms;
      // A yearless date more than two days ahead of now belongs to last year (logs from December read in January).
      line.time = t > ref + 2 * 86_400_000 ? this.localMinute(year - 1, month, day, hh, mm) + ss * 1000 + ms : t;
    } else {
      line.time = this.localMinute(year, month, day, hh, mm) + ss * 1000 + ms;
    }
    this.bare = ctime;
    return s.charCodeAt(i) === 93 ? i : skipSpaces(s, i);
  }

  /**
   * `@` and 24 hex digits: TAI64N as multilog writes it, 2^62 + 10 + Unix seconds
   * (daemontools' tai64nlocal subtracts the same 10 s; leap seconds are not counted).
   */
  private parseTai64n(s: string, pos: number, line: LogLine): number {
    const end = pos + 25;
    if (s.length < end || (end < s.length && s.charCodeAt(end) !== 32)) return -1;
    for (let i = pos + 1; i < end; i++) if (!isHexDigit(s.charCodeAt(i))) return -1;
    const seconds = BigInt(`0x${s.slice(pos + 1, pos + 17)}`) - (1n << 62n) - 10n;
    const nanos = parseInt(s.slice(pos + 17, end), 16);
    line.time = Number(seconds) * 1000 + Math.floor(nanos / 1e6);
    this.bare = true;
    this.bareTag = 'program';
    return skipSpaces(s, end);
  }

  /** The optional tag after a bare timestamp (see bareTag); true when one was parsed. */
  private parseBareTag(s: string, pos: number, line: LogLine): boolean {
    if (this.bareTag === 'none') return false;
    let end = s.indexOf(' ', pos);
    if (end < 0) end = s.length;
    if (this.bareTag === 'program') return this.tryProgram(s, pos, end, line);
    // Strict, so a service's own text (`[pid] SMTP …`, `auth-worker(1): …`) is never taken for a tag.
    if (s.charCodeAt(end - 2) === 93 /* ] */ && this.tryProgram(s, pos, end, line)) return true;
    if (end === pos || !isHostName(s, pos, end)) return false;
    const next = skipSpaces(s, end);
    let end2 = s.indexOf(' ', next);
    if (end2 < 0) end2 = s.length;
    if (s.charCodeAt(end2 - 2) !== 93 || !this.tryProgram(s, next, end2, line)) return false;
    line.host = s.slice(pos, end);
    return true;
  }

  private referenceMs = 0;
  private referenceKey = -1;
  private referenceUses = 0;
  /**
   * "Now" for placing a yearless date, read again whenever the line's minute
   * changes (and every 1024 lines): lines stamped with the same minute belong
   * to the same year, and the clock costs as much as the rest of the date.
   */
  private reference(month: number, day: number, hh: number, mm: number): number {
    const key = ((month * 32 + day) * 32 + hh) * 64 + mm;
    if (key !== this.referenceKey || (++this.referenceUses & 1023) === 0) {
      this.referenceKey = key;
      this.referenceMs = this.now();
    }
    return this.referenceMs;
  }

  private localMinute(year: number, month: number, day: number, hh: number, mm: number): number {
    const key = (((year * 16 + month) * 32 + day) * 32 + hh) * 64 + mm;
    if (key !== this.minuteKey) {
      this.minuteKey = key;
      this.minuteMs = new Date(year, month, day, hh, mm, 0, 0).getTime();
    }
    return this.minuteMs;
  }

  /** After a syslog timestamp: `host prog[pid]: msg`, or `prog[pid]: msg` when the sender omits its host. */
  private parseHostProgram(s: string, pos: number, line: LogLine): void {
    let end = s.indexOf(' ', pos);
    if (end < 0) end = s.length;
    if (!this.tryProgram(s, pos, end, line)) {
      line.host = s.slice(pos, end);
      const next = skipSpaces(s, end);
      let end2 = s.indexOf(' ', next);
      if (end2 < 0) end2 = s.length;
      if (!this.tryProgram(s, next, end2, line)) line.message = s.slice(next);
    }
  }

  /** Accepts `prog:`, `prog[pid]:` (the tag of RFC 3164) as the token s[start,end). */
  private tryProgram(s: string, start: number, end: number, line: LogLine): boolean {
    if (end - start < 2 || s.charCodeAt(end - 1) !== 58 /* : */) return false;
    let tagEnd = end - 1;
    let pid: number | null = null;
    if (s.charCodeAt(tagEnd - 1) === 93 /* ] */) {
      // `[digits]` read backwards: the pid's value without a substring; a pid has at most 10 digits.
      let open = tagEnd - 2;
      let value = 0;
      const stop = Math.max(start, tagEnd - 12);
      for (let scale = 1; open > stop && isDigit(s.charCodeAt(open)); open--, scale *= 10) value += (s.charCodeAt(open) - 48) * scale;
      if (open <= start || open === tagEnd - 2 || s.charCodeAt(open) !== 91 /* [ */) return false;
      pid = value;
      tagEnd = open;
    }
    if (tagEnd === start) return false;
    line.program = s.slice(start, tagEnd);
    line.pid = pid;
    line.message = s.slice(skipSpaces(s, end));
    return true;
  }

  /** RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`. */
  private parse5424(s: string, pos: number, line: LogLine): boolean {
    const fields: string[] = [];
    let i = pos;
    for (let f = 0; f < 5; f++) {
      const sp = s.indexOf(' ', i);
      if (sp < 0) return false;
      fields.push(s.slice(i, sp));
      i = sp + 1;
    }
    const [ts, host, app, procid] = fields as [string, string, string, string, string];
    if (ts !== '-') {
      if (this.parseNumericDate(ts, 0, line) < 0) return false;
      line.timeFromLine = true;
    } else {
      line.time = this.now();
    }
    // Structured data: '-' or one or more [id k="v"...] elements. ']' inside values should be escaped,
    // but some senders leave it bare (`test="[brackets]"`): inside quotes it does not end the element.
    if (s.charCodeAt(i) === 45) {
      i++;
    } else if (s.charCodeAt(i) === 91) {
      while (s.charCodeAt(i) === 91) {
        i++;
        let quoted = false;
        while (i < s.length && (quoted || s.charCodeAt(i) !== 93)) {
          const c = s.charCodeAt(i);
          if (c === 34 /* " */) quoted = !quoted;
          i += c === 92 /* \ */ ? 2 : 1;
        }
        i++;
      }
    } else {
      return false;
    }
    if (s.charCodeAt(i) === 32) i++;
    // A UTF-8 byte order mark may start the message.
    if (s.charCodeAt(i) === 0xfeff) i++;
    line.host = host === '-' ? null : host;
    line.program = app === '-' ? null : app;
    line.pid = /^\d+$/.test(procid) ? Number(procid) : null;
    line.message = s.slice(i);
    return true;
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/**
 * Letters, digits, `.`, `-`, `_`, at most 253 of them (DNS): a syslog host name, never a service's own
 * `[pid]` or `H=(…)` text, and never a crafted 16 KiB word scanned to its end.
 */
function isHostName(s: string, start: number, end: number): boolean {
  if (end - start > 253) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 45 || c === 95)) return false;
  }
  return true;
}

function isDigits(s: string, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** Fixed-width decimal at s[pos, pos+width), or -1. */
function num(s: string, pos: number, width: number): number {
  let v = 0;
  for (let i = pos; i < pos + width; i++) {
    const c = s.charCodeAt(i);
    if (!(c >= 48 && c <= 57)) return -1;
    v = v * 10 + c - 48;
  }
  return v;
}

/**
 * Syslog headers separate their fields by a space or two (`Mar  2`): past MAX_SPACES the line is not a
 * header, and a crafted line of 16 KiB of spaces costs no more than a real one (a scan of it was 35 µs).
 */
const MAX_SPACES = 32;

function skipSpaces(s: string, i: number): number {
  const end = i + MAX_SPACES;
  while (i < end && s.charCodeAt(i) === 32) i++;
  return i;
}
