import type { ApiVersion } from './api.js';
import { Fields, SpecError, type Table } from './toml.js';

/** A process a buildpack declares in launch.toml. */
export interface Process {
  type: string;
  command: string[];
  args: string[];
  /** Buildpack API 0.9+: always; before it, `direct = false` (the default) runs through a shell. */
  direct: boolean;
  default: boolean;
  workingDir?: string;
  execEnv?: string[];
}

export interface Label {
  key: string;
  value: string;
}

export interface Slice {
  paths: string[];
}

export interface LaunchFile {
  labels: Label[];
  processes: Process[];
  slices: Slice[];
  bom: Table[];
}

const PROCESS_TYPE = /^[A-Za-z0-9._-]+$/;

/** A process type names a file (`/cnb/process/<type>`), so `.` and `..` are refused with the rest. */
export function checkProcessType(type: string, file: string): string {
  if (!PROCESS_TYPE.test(type) || type === '.' || type === '..') throw new SpecError(`${file}: process type "${type}" may hold only letters, digits, ".", "_" and "-" (and is not "." or "..")`);
  return type;
}

export function parseLaunch(table: Table, file: string, api: ApiVersion): LaunchFile {
  const f = new Fields(table, file);
  const processes = f.list('processes').map((p) => {
    const type = p.reqStr('type');
    checkProcessType(type, file);
    let command: string[];
    let direct: boolean;
    if (api.lessThan('0.9')) {
      command = [p.reqStr('command')];
      direct = p.bool('direct', false);
    } else {
      if (p.has('direct')) throw new SpecError(`${file}: process "${type}": "direct" is not allowed for Buildpack API ${api} (every process is direct)`);
      if (typeof p.table.command === 'string') throw new SpecError(`${file}: process "${type}": command must be an array of strings for Buildpack API ${api} (command = ["${p.table.command}"])`);
      command = p.strArray('command') ?? [];
      if (!command.length || !command[0]) throw new SpecError(`${file}: process "${type}" has no command`);
      direct = true;
    }
    const workingDir = p.str('working-dir');
    const execEnv = p.strArray('exec-env');
    return { type, command, args: p.strArray('args') ?? [], direct, default: p.bool('default'), ...(workingDir ? { workingDir } : {}), ...(execEnv ? { execEnv } : {}) };
  });
  const types = new Set<string>();
  for (const p of processes) {
    if (types.has(p.type)) throw new SpecError(`${file}: process type "${p.type}" is declared twice`);
    types.add(p.type);
  }
  const defaults = processes.filter((p) => p.default);
  if (defaults.length > 1) throw new SpecError(`${file}: more than one default process (${defaults.map((p) => p.type).join(', ')})`);
  const labels = f.list('labels').map((l) => ({ key: l.reqStr('key'), value: l.str('value') ?? '' }));
  const keys = new Set<string>();
  for (const l of labels) {
    if (keys.has(l.key)) throw new SpecError(`${file}: label "${l.key}" is declared twice`);
    keys.add(l.key);
  }
  const slices = f.list('slices').map((s) => ({ paths: s.strArray('paths') ?? [] }));
  const bom = f.list('bom').map((b) => b.table);
  return { labels, processes, slices, bom };
}
