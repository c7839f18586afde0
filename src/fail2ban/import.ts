import { stringify } from 'yaml';
import { configFromFiles, type Config } from '../config/load.js';
import { RECIDIVE_JAIL } from '../config/builtin-jails.js';
import { readJails, type ImportedJail, type JailsImport } from './jail-reader.js';

/**
 * `portcullis import-fail2ban`: a fail2ban configuration directory as an
 * equivalent native configuration (YAML text), plus the list of what could not
 * be carried over. Each enabled fail2ban jail becomes a jail of the same name
 * whose filter is the fail2ban filter file itself (with the jail's filter
 * options), so the admin's own filters keep working unchanged.
 */

export interface ImportResult {
  yaml: string;
  /** Human-readable notes: one line each, `jail: what`. */
  report: string[];
  imported: JailsImport;
  /** Enabled jails left out because of actions we have no equivalent for. */
  skipped: string[];
}

export function importFail2ban(dir: string, options: { acceptUnknownActions?: boolean } = {}): ImportResult {
  const imported = readJails(dir);
  const report: string[] = imported.problems.map((p) => `configuration: ${p}`);
  const jails: Record<string, Record<string, unknown>> = {};
  const skipped: string[] = [];
  for (const j of imported.jails) {
    if (!j.enabled) continue;
    for (const n of j.notes) report.push(`${j.name}: ${n}`);
    if (j.unknownActions.length) {
      if (!options.acceptUnknownActions) {
        report.push(`${j.name}: actions ${j.unknownActions.join(', ')} have no Portcullis equivalent; the jail is left out (pass --accept-unknown-actions to load it with the default enforcer)`);
        skipped.push(j.name);
        continue;
      }
      report.push(`${j.name}: actions ${j.unknownActions.join(', ')} have no Portcullis equivalent; the jail uses the default enforcer`);
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/.test(j.name)) {
      report.push(`${j.name}: the jail name is not usable in Portcullis (letters, digits, "_", "-", ".", at most 31 characters); left out`);
      skipped.push(j.name);
      continue;
    }
    if (j.name === RECIDIVE_JAIL) {
      // Portcullis' own recidive jail counts the other jails' bans and reads no logs; fail2ban's reads fail2ban.log.
      report.push(`${j.name}: imported as "${RECIDIVE_JAIL}-fail2ban", which reads ${j.sources.map((s) => ('file' in s ? s.file.join(', ') : 'the journal')).join(', ')} as fail2ban's did; Portcullis writes no such log, so once fail2ban is gone enable the native repeat-offender jail instead (jails: { ${RECIDIVE_JAIL}: { enabled: true } })`);
      jails[`${RECIDIVE_JAIL}-fail2ban`] = jailYaml(j);
      continue;
    }
    jails[j.name] = jailYaml(j);
  }
  // Portcullis enables its built-in sshd jail unless told otherwise; fail2ban's setup decides here.
  if (!jails.sshd) jails.sshd = { enabled: false };
  const header = [
    `# Imported from ${imported.dir} by portcullis import-fail2ban.`,
    `# fail2ban files read: ${imported.files.join(', ')}`,
    ...(report.length ? ['# Not carried over (review these):', ...report.map((r) => `#   ${r}`)] : ['# Everything was carried over.']),
    '',
  ].join('\n');
  return { yaml: header + stringify({ jails }, { lineWidth: 0 }), report, imported, skipped };
}

function jailYaml(j: ImportedJail): Record<string, unknown> {
  const out: Record<string, unknown> = { enabled: true, filters: [j.filter] };
  out.sources = j.sources;
  if (j.maxretry !== null) out.maxretry = j.maxretry;
  if (j.findtime !== null) out.findtime = j.findtime;
  if (j.bantime !== null) out.bantime = j.bantime === '-1' ? 'permanent' : j.bantime;
  if (j.ignoreip.length) out.ignoreip = j.ignoreip;
  if (j.ports) out.ports = j.ports;
  if (j.protocol) out.protocol = j.protocol;
  if (j.enforcer) out.enforcer = j.enforcer;
  return out;
}

/**
 * `portcullis run --fail2ban-config DIR`: the configuration imported from a
 * fail2ban directory, with the admin's own Portcullis files (state_dir,
 * enforcer, extra jails …) applied on top when they exist.
 */
export function configFromFail2ban(dir: string, ownFiles: Array<{ file: string; text: string }>, options: { acceptUnknownActions?: boolean } = {}): { config: Config; report: string[] } {
  const result = importFail2ban(dir, options);
  const config = configFromFiles([{ file: `${result.imported.dir} (imported fail2ban configuration)`, text: result.yaml }, ...ownFiles]);
  return { config, report: result.report };
}
