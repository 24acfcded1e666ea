/**
 * Reads what the shipped systemd units set, so the bench runs "production"
 * with exactly the unit's allocator and the tests check the unit itself,
 * not a copy of its values that could drift.
 *
 * @module
 */

import { ROOT } from "./paths.ts";

/** Every `Key=value` line of a unit, prefixed by its section, no comments. */
export function unitEntries(unit: string): string[] {
  let section = "";
  const out: string[] = [];
  for (const line of unit.split("\n")) {
    if (line.startsWith("[")) section = line;
    else if (/^[A-Za-z]+=/.test(line)) out.push(`${section}${line}`);
  }
  return out;
}

/** The `Environment=` assignments of a unit's [Service] as one map. */
export function unitEnvironment(unit: string): Record<string, string> {
  const prefix = "[Service]Environment=";
  return Object.fromEntries(
    unitEntries(unit).filter((l) => l.startsWith(prefix))
      .flatMap((l) => l.slice(prefix.length).split(/\s+/))
      .map((pair) => [
        pair.slice(0, pair.indexOf("=")),
        pair.slice(pair.indexOf("=") + 1),
      ]),
  );
}

/** deploy/ws-time.service, as shipped. */
export function shippedUnit(): string {
  return Deno.readTextFileSync(`${ROOT}deploy/ws-time.service`);
}

/**
 * The allocator environment of deploy/ws-time.service: the preloaded
 * jemalloc and its `MALLOC_CONF`. Throws when the unit sets neither, since
 * a "production" figure would then be measured with another allocator.
 */
export function productionAllocatorEnv(
  unit: string = shippedUnit(),
): Readonly<Record<string, string>> {
  const env = unitEnvironment(unit);
  const out: Record<string, string> = {};
  for (const key of ["LD_PRELOAD", "MALLOC_CONF"]) {
    const value = env[key];
    if (value === undefined) {
      throw new Error(`deploy/ws-time.service sets no ${key}`);
    }
    out[key] = value;
  }
  return Object.freeze(out);
}
