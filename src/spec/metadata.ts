import type { ApiVersion } from './api.js';
import type { GroupEntry } from './group.js';
import { checkProcessType, type Label, type Slice } from './launch.js';
import { Fields, writeToml, type Table } from './toml.js';

/** A process as the builder hands it to the exporter and launcher. */
export interface MetadataProcess {
  type: string;
  command: string[];
  args: string[];
  direct: boolean;
  buildpackId: string;
  workingDir?: string;
  execEnv: string[];
}

/** `<layers>/config/metadata.toml`, the builder's output and the launcher's input. */
export interface BuildMetadata {
  buildpacks: GroupEntry[];
  extensions: GroupEntry[];
  processes: MetadataProcess[];
  slices: Slice[];
  labels: Label[];
  defaultProcess?: string;
}

/** Platform API 0.10 made `command` an array; before it only a string, the rest moved to the front of `args`. */
export async function writeMetadata(path: string, md: BuildMetadata, platformApi: ApiVersion): Promise<void> {
  const arrays = platformApi.atLeast('0.10');
  await writeToml(path, {
    'buildpack-default-process-type': md.defaultProcess,
    buildpacks: md.buildpacks.map((b) => ({ id: b.id, version: b.version, api: b.api, homepage: b.homepage })),
    ...(md.extensions.length ? { extensions: md.extensions.map((b) => ({ id: b.id, version: b.version, api: b.api, homepage: b.homepage })) } : {}),
    processes: md.processes.map((p) => ({
      type: p.type,
      command: arrays ? p.command : p.command[0],
      args: arrays ? p.args : [...p.command.slice(1), ...p.args],
      direct: p.direct,
      'buildpack-id': p.buildpackId,
      'working-dir': p.workingDir,
      'exec-env': p.execEnv,
    })),
    slices: md.slices.map((s) => ({ paths: s.paths })),
    labels: md.labels.map((l) => ({ key: l.key, value: l.value })),
  });
}

export function parseMetadata(t: Table, file: string): BuildMetadata {
  const f = new Fields(t, file);
  const entry = (e: Fields) => ({ id: e.reqStr('id'), version: e.str('version') ?? '', api: e.str('api') ?? '', ...(e.str('homepage') ? { homepage: e.str('homepage') } : {}) });
  const def = f.str('buildpack-default-process-type');
  return {
    buildpacks: f.list('buildpacks').map(entry),
    extensions: f.list('extensions').map(entry),
    processes: f.list('processes').map((p) => {
      const c = p.table.command;
      const command = typeof c === 'string' ? [c] : (p.strArray('command') ?? []);
      const wd = p.str('working-dir');
      return { type: checkProcessType(p.reqStr('type'), file), command, args: p.strArray('args') ?? [], direct: p.bool('direct'), buildpackId: p.str('buildpack-id') ?? '', ...(wd ? { workingDir: wd } : {}), execEnv: p.strArray('exec-env') ?? ['*'] };
    }),
    slices: f.list('slices').map((s) => ({ paths: s.strArray('paths') ?? [] })),
    labels: f.list('labels').map((l) => ({ key: l.reqStr('key'), value: l.str('value') ?? '' })),
    ...(def ? { defaultProcess: def } : {}),
  };
}
