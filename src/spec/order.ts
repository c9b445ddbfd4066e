import { Fields, SpecError, readToml, type Table } from './toml.js';

/** One entry of an order group: a buildpack (or extension) by id and version. */
export interface OrderElement {
  id: string;
  version?: string;
  optional: boolean;
  /** From a buildpack descriptor's composite order; empty = any. */
  execEnv?: string[];
  /** An image extension (from `[[order-extensions]]`), read from the extensions dir. */
  extension?: boolean;
}

export interface OrderGroup {
  group: OrderElement[];
}

export type Order = OrderGroup[];

/** The platform's order.toml: buildpack groups, and extension groups for image extensions. */
export interface OrderFile {
  order: Order;
  orderExtensions: Order;
}

export function parseElement(f: Fields, requireVersion: boolean): OrderElement {
  const id = f.reqStr('id');
  const version = requireVersion ? f.reqStr('version') : f.str('version');
  const execEnv = f.strArray('exec-env');
  return { id, ...(version ? { version } : {}), optional: f.bool('optional'), ...(execEnv ? { execEnv } : {}) };
}

export function parseOrder(groups: Fields[], requireVersion: boolean): Order {
  return groups.map((g) => ({ group: g.list('group').map((e) => parseElement(e, requireVersion)) }));
}

export function parseOrderFile(table: Table, file: string): OrderFile {
  const f = new Fields(table, file);
  return { order: parseOrder(f.list('order'), true), orderExtensions: parseOrder(f.list('order-extensions'), true) };
}

export async function readOrderFile(path: string): Promise<OrderFile> {
  const t = await readToml(path);
  if (!t) throw new SpecError(`${path}: order.toml not found; give one with -order or CNB_ORDER_PATH`);
  return parseOrderFile(t, path);
}

export function orderToToml(order: Order, key = 'order'): Table {
  return { [key]: order.map((g) => ({ group: g.group.map((e) => ({ id: e.id, version: e.version, optional: e.optional || undefined })) })) };
}
