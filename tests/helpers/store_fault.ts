/**
 * What every store fault must leave as it found it, whatever the store:
 * counts unbroken, no client ended, no live connection taken over or held
 * twice, every instance's store back, every session's record kept.
 *
 * @module
 */

import assert from "node:assert/strict";
import { figuresTable } from "../../dev/fault_report.ts";
import type { StoreFaultFigures } from "../../dev/fault_scenarios.ts";

/** Asserts what no store fault may cost; `what` names it in failures. */
export function assertNothingLost(f: StoreFaultFigures, what: string): void {
  assert.equal(f.continuityViolations, 0, `${what}: counts broke`);
  assert.equal(f.ended, 0, `${what}: clients ended`);
  assert.equal(f.takenOver, 0, `${what}: a live connection taken over`);
  assert.equal(f.duplicates, 0, `${what}: duplicate live connections`);
  assert.ok(f.storesSettled, `${what}: a store did not come back`);
  assert.ok(
    f.recordsOnPrimary >= f.clientsStarted,
    `${what}: ${f.recordsOnPrimary} records for ${f.clientsStarted} sessions`,
  );
}

/** Prints the faults' client table and each fault's store figures. */
export function printStoreFaults(rows: readonly StoreFaultFigures[]): void {
  // deno-lint-ignore no-console
  console.log(figuresTable(rows));
  // deno-lint-ignore no-console
  console.log(
    rows.map((r) =>
      `${r.fault}: promoted after ${r.promotedAfterMs} ms, not writable ${r.notWritableMs} ms, buffered ${r.buffered}, replayed ${r.replayed}, token resumes ${r.tokenResumes}, failovers seen ${r.failoversSeen}, records ${r.recordsOnPrimary}/${r.clientsStarted}`
    ).join("\n"),
  );
}
