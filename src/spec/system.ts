import { parseElement, type OrderElement } from './order.js';
import { Fields, readToml } from './toml.js';

/** system.toml (Platform API 0.15): buildpacks put before and after every group. */
export interface SystemFile {
  pre: OrderElement[];
  post: OrderElement[];
}

export async function readSystemFile(path: string): Promise<SystemFile> {
  const t = await readToml(path);
  if (!t) return { pre: [], post: [] };
  const sys = new Fields(t, path).sub('system');
  return { pre: sys.sub('pre').list('buildpacks').map((e) => parseElement(e, true)), post: sys.sub('post').list('buildpacks').map((e) => parseElement(e, true)) };
}
