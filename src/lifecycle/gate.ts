/**
 * A phase started by a platform before its inputs are ready (strata build starts the detector's sandbox during the
 * analysis, the builder's during detection): with this env var set, the phase reads nothing until the platform says
 * `go` on its stdin. A closed stdin without it means the run was called off.
 */
export const LIFECYCLE_GATE = 'STRATA_LIFECYCLE_GATE';

export async function gateOpened(): Promise<boolean> {
  let said = '';
  for await (const chunk of process.stdin) said += String(chunk);
  return said.startsWith('go');
}
