/** Commander accumulators for options given more than once: each value kept as it is. */
export function repeatable(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Like `repeatable`, also splitting comma-separated values (`--insecure-registry a,b`, `--build-packages p,q`). */
export function commaList(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}
