/**
 * Real faults on real hosts (network namespaces; see helpers/fault_bed.ts):
 * 300 of the page's clients through HAProxy over three instances sharing
 * Redis. Each fault must leave every client with its session, its count
 * continuous, no client ended and exactly one live connection per session.
 * How fast they come back is measured by `deno task chaos`, not here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FaultBed } from "../../dev/fault_bed.ts";
import { type FaultFigures, figuresTable } from "../../dev/fault_report.ts";
import { FAULTS, runFault } from "../../dev/fault_scenarios.ts";
import { netnsUnavailable } from "../../dev/netns.ts";

const CLIENTS = 300;
const unavailable = netnsUnavailable();

Deno.test({
  name: unavailable === null
    ? "fault bed: SIGKILL, a lossy link, SIGSTOP, a partition and a Redis partition leave 300 clients their sessions"
    : `fault bed (skipped: cannot create network namespaces here: ${unavailable})`,
  ignore: unavailable !== null,
  async fn(t) {
    await using bed = await FaultBed.start({ clients: CLIENTS });
    const rows: Array<FaultFigures & { evidence: string }> = [];
    for (const kind of FAULTS) {
      await t.step(kind, async () => {
        // Shorter holds than chaos's 30 s and 20 s: still long enough for
        // every client of the struck instance to notice and move (the page
        // gives up on a silent link after 3.5 s), short enough for the
        // suite's budget.
        const figures = await runFault(bed, kind, CLIENTS, {
          holdMs: 10_000,
          lossyMs: 8_000,
          settleMs: 45_000,
        });
        rows.push(figures);
        const what = `${kind} on ${figures.instance}`;
        if (kind === "kill" || kind === "freeze" || kind === "partition") {
          assert.ok(
            figures.affected >= 30,
            `${what}: ${figures.affected} affected`,
          );
        }
        assert.equal(
          figures.resumed,
          figures.affected,
          `${what}: not all resumed`,
        );
        assert.equal(figures.continuityViolations, 0, `${what}: counts broke`);
        assert.equal(figures.ended, 0, `${what}: clients ended`);
        assert.equal(
          figures.takenOver,
          0,
          `${what}: a live connection was taken over`,
        );
        assert.equal(
          figures.duplicates,
          0,
          `${what}: duplicate live connections`,
        );
        if (kind === "redis-partition") {
          assert.equal(figures.affected, 0, `${what}: clients lost their link`);
          assert.doesNotMatch(figures.evidence, /store up/, `${what}: no cut`);
        }
        if (kind === "lossy") {
          const rtt = Number(/(\d+) ms/.exec(figures.evidence)?.[1]);
          assert.ok(rtt >= 300, `${what}: not slow (${figures.evidence})`);
        }
      });
    }
    // deno-lint-ignore no-console
    console.log(figuresTable(rows));
    // deno-lint-ignore no-console
    console.log(rows.map((r) => `${r.fault}: ${r.evidence}`).join("\n"));
  },
});
