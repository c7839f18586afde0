import type { Daemon } from '../daemon/daemon.js';
import type { SourceStatus } from '../sources/source.js';
import type { Activity } from './activity.js';

/**
 * /metrics in the Prometheus text exposition format (version 0.0.4), written
 * by hand: a few dozen series need no client library. Counters count since the
 * daemon started (Prometheus handles the reset at a restart).
 */

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;
type Sample = [Labels, number];

class Exposition {
  private readonly out: string[] = [];

  metric(name: string, type: 'counter' | 'gauge', help: string, samples: Iterable<Sample>): void {
    this.out.push(`# HELP portcullis_${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE portcullis_${name} ${type}`);
    for (const [labels, value] of samples) this.out.push(`portcullis_${name}${formatLabels(labels)} ${formatValue(value)}`);
  }

  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function* split2(map: ReadonlyMap<string, number>, a: string, b: string): Iterable<Sample> {
  for (const [key, n] of [...map].sort(([x], [y]) => x.localeCompare(y))) {
    const [x, y] = key.split('\0') as [string, string];
    yield [{ [a]: x, [b]: y }, n];
  }
}

export async function renderMetrics(daemon: Daemon, activity: Activity): Promise<string> {
  const status = daemon.status();
  const counters = await daemon.enforcerCounters();
  const m = new Exposition();
  const jails = status.jails.map((j) => j.name);

  m.metric('start_time_seconds', 'gauge', 'When the daemon started, seconds since the epoch.', [[{ node: status.node }, Date.parse(status.startedAt) / 1000]]);

  const sources = new Map<string, SourceStatus>();
  for (const j of status.jails) for (const s of j.sources) sources.set(s.id, s);
  m.metric('lines_read_total', 'counter', 'Log lines read, per source.', [...sources.values()].map((s): Sample => [{ source: s.id, kind: s.kind }, s.linesRead]));
  m.metric('lines_matched_total', 'counter', 'Log lines a filter recognised, per filter and event kind.', split2(activity.matched, 'filter', 'kind'));
  m.metric(
    'lines_overlong_total',
    'counter',
    "Lines under a filter's programs longer than its service can write (somebody else wrote them), skipped unread, per filter.",
    [...daemon.pipeline.filterStats].sort(([a], [b]) => a.localeCompare(b)).map(([filter, s]): Sample => [{ filter }, s.overlong]),
  );
  m.metric(
    'lines_over_budget_total',
    'counter',
    "Long lines a filter gave up on because its user-supplied patterns ran over their time budget (crafted to stall them), per filter.",
    [...daemon.pipeline.filterStats.keys()].sort().map((filter): Sample => [{ filter }, daemon.pipeline.linesOverBudget(filter)]),
  );
  m.metric('health_events_total', 'counter', 'Operational warnings seen in the logs (never a reason to ban), per filter and pattern.', split2(activity.health, 'filter', 'pattern'));
  m.metric('decisions_total', 'counter', 'Decisions made, per jail and action.', split2(activity.decisions, 'jail', 'action'));

  const active = new Map<string, number>();
  for (const j of jails) for (const f of ['4', '6']) active.set(`${j}\0${f}`, 0);
  for (const { jail, family, n } of daemon.storeCounts.get('bans by family', () => daemon.store.activeBansByFamily())) active.set(`${jail}\0${family}`, n);
  m.metric('bans_active', 'gauge', 'Bans in force, per jail and address family.', split2(active, 'jail', 'family'));
  m.metric('failing_addresses', 'gauge', 'Addresses with failures counted but not (yet) banned, per jail.', status.jails.map((j): Sample => [{ jail: j.name }, j.failing]));
  m.metric('siege', 'gauge', 'Whether the jail is in siege mode (1) or not (0).', jails.map((j): Sample => [{ jail: j }, 0]));

  m.metric('enforcer_up', 'gauge', 'Whether the enforcer is working (1) or failing and retrying (0).', status.enforcers.map((e): Sample => [{ enforcer: e.name }, e.ready ? 1 : 0]));
  m.metric('enforcer_errors_total', 'counter', 'Failed firewall operations, per enforcer.', status.enforcers.map((e): Sample => [{ enforcer: e.name }, e.errors]));
  m.metric('enforcer_pending', 'gauge', 'Bans and unbans waiting for the enforcer.', status.enforcers.map((e): Sample => [{ enforcer: e.name }, e.pending]));

  const dropped = new Map<string, { packets: number; bytes: number }>();
  for (const c of counters) {
    const d = dropped.get(c.jail) ?? { packets: 0, bytes: 0 };
    d.packets += c.packets;
    d.bytes += c.bytes;
    dropped.set(c.jail, d);
  }
  const droppedSorted = [...dropped].sort(([a], [b]) => a.localeCompare(b));
  m.metric('dropped_packets_total', 'counter', 'Packets from banned sources stopped by the firewall, per jail (enforcers that count them: nftables).', droppedSorted.map(([jail, d]): Sample => [{ jail }, d.packets]));
  m.metric('dropped_bytes_total', 'counter', 'Bytes from banned sources stopped by the firewall, per jail.', droppedSorted.map(([jail, d]): Sample => [{ jail }, d.bytes]));

  const lagBytes: Sample[] = [];
  const lastLine: Sample[] = [];
  for (const s of sources.values()) {
    for (const item of s.items) {
      if (item.lagBytes !== undefined) lagBytes.push([{ source: s.id, item: item.name }, item.lagBytes]);
      if (item.lastLineAt) lastLine.push([{ source: s.id, item: item.name }, item.lastLineAt / 1000]);
    }
  }
  m.metric('source_lag_bytes', 'gauge', 'Bytes written to a followed file but not read yet.', lagBytes);
  m.metric('source_last_line_timestamp_seconds', 'gauge', 'When the last line was read from a followed item.', lastLine);
  m.metric('source_lag_seconds', 'gauge', 'Age of the last matched line when it was processed (its own time to now), per line source.',
    [...activity.lagSeconds].sort(([a], [b]) => a.localeCompare(b)).map(([source, s]): Sample => [{ source }, Math.round(s * 1000) / 1000]));
  return m.text();
}
