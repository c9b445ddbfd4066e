import { StrataError } from '../oci/errors.js';
import { Exit } from '../spec/exit.js';

/** A CNB API version, `<major>.<minor>` or `<major>` (meaning `.0`). */
export class ApiVersion {
  private constructor(
    readonly major: number,
    readonly minor: number,
  ) {}

  static parse(text: string, what = 'API version'): ApiVersion {
    const m = /^v?(\d+)(?:\.(\d+))?$/.exec(text.trim());
    if (!m) throw new StrataError(`${what} "${text}" is not a version like 0.12`);
    return new ApiVersion(Number(m[1]), Number(m[2] ?? 0));
  }

  compare(other: ApiVersion | string): number {
    const o = typeof other === 'string' ? ApiVersion.parse(other) : other;
    return this.major - o.major || this.minor - o.minor;
  }

  atLeast(other: string): boolean {
    return this.compare(other) >= 0;
  }

  lessThan(other: string): boolean {
    return this.compare(other) < 0;
  }

  /** For major 0 only an exact match is compatible; from 1 on, the same major with a minor up to the supported one. */
  supportedBy(supported: readonly string[]): boolean {
    return supported.some((s) => {
      const v = ApiVersion.parse(s);
      if (v.major !== this.major) return false;
      return this.major === 0 ? v.minor === this.minor : this.minor <= v.minor;
    });
  }

  toString(): string {
    return `${this.major}.${this.minor}`;
  }
}

function range(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `0.${from + i}`);
}

export const SUPPORTED_PLATFORM_APIS: readonly string[] = range(7, 15);
export const SUPPORTED_BUILDPACK_APIS: readonly string[] = range(7, 12);
export const LATEST_PLATFORM_API = '0.15';
export const LATEST_BUILDPACK_API = '0.12';

/** Reads CNB_PLATFORM_API first thing, as every phase must; unset or unsupported exits 11. */
export function platformApi(value: string | undefined): ApiVersion {
  if (!value) throw new StrataError(`CNB_PLATFORM_API is not set; set it to one of ${SUPPORTED_PLATFORM_APIS.join(', ')}`, Exit.PlatformApi);
  let v: ApiVersion;
  try {
    v = ApiVersion.parse(value, 'CNB_PLATFORM_API');
  } catch (err) {
    throw new StrataError((err as Error).message, Exit.PlatformApi);
  }
  if (!v.supportedBy(SUPPORTED_PLATFORM_APIS)) throw new StrataError(`Platform API ${value} is not supported (supported: ${SUPPORTED_PLATFORM_APIS.join(', ')})`, Exit.PlatformApi);
  return v;
}

/** A buildpack's declared API, checked against what strata supports (exit 12 otherwise). */
export function buildpackApi(value: string | undefined, who: string): ApiVersion {
  if (!value) throw new StrataError(`${who}: no api declared`, Exit.BuildpackApi);
  let v: ApiVersion;
  try {
    v = ApiVersion.parse(value, `${who}: api`);
  } catch (err) {
    throw new StrataError((err as Error).message, Exit.BuildpackApi);
  }
  if (!v.supportedBy(SUPPORTED_BUILDPACK_APIS)) throw new StrataError(`${who}: Buildpack API ${value} is not supported (supported: ${SUPPORTED_BUILDPACK_APIS.join(', ')})`, Exit.BuildpackApi);
  return v;
}
