import { createRequire } from 'node:module';

/*
 * node:http and node:https as CommonJS modules. An ESM import of node:http copies every export into its namespace,
 * and the lazy getters among them (WebSocket, EventSource) load the bundled undici: about 20 ms at the start of every
 * command that talks to a registry, for code strata never runs. require() reads only what is used.
 */
const load = createRequire(import.meta.url);

export const http = load('node:http') as typeof import('node:http');

let httpsModule: typeof import('node:https') | undefined;
/** node:https, loaded (with TLS) the first time an https URL needs it. */
export function https(): typeof import('node:https') {
  return (httpsModule ??= load('node:https') as typeof import('node:https'));
}
