/**
 * The session store failing over under load: Redis with a replica and
 * three sentinels (deploy/redis/sentinel.conf), three instances following
 * the primary with --redis-sentinels, 300 clients through HAProxy, all on
 * hosts of their own (network namespaces). The primary is killed, frozen
 * past down-after-milliseconds, and cut off from one instance only. No
 * client may notice any of it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FaultBed } from "../../dev/fault_bed.ts";
import {
  runStoreFault,
  STORE_FAULTS,
  type StoreFaultFigures,
} from "../../dev/fault_scenarios.ts";
import { netnsUnavailable } from "../../dev/netns.ts";
import { assertNothingLost, printStoreFaults } from "../helpers/store_fault.ts";

const unavailable = netnsUnavailable();

Deno.test({
  name: unavailable === null
    ? "--redis-sentinels: a killed, a frozen and a cut-off primary cost 300 clients nothing"
    : `--redis-sentinels (skipped: cannot create network namespaces here: ${unavailable})`,
  ignore: unavailable !== null,
  async fn(t) {
    await using bed = await FaultBed.start({
      clients: 300,
      store: "sentinel",
    });
    // Authentication is on, as the shipped sentinel.conf has it: a client
    // without the sentinels' password learns nothing, not even the primary.
    assert.match(
      await bed.anonymousSentinelReply(
        "SENTINEL",
        "get-master-addr-by-name",
        "wstime",
      ),
      /NOAUTH/,
    );
    const rows: StoreFaultFigures[] = [];
    for (const kind of STORE_FAULTS) {
      await t.step(kind, async () => {
        const f = await runStoreFault(bed, kind, {
          holdMs: 10_000,
          lossyMs: 0,
          settleMs: 45_000,
        });
        rows.push(f);
        const what = `${kind} (${f.primaryBefore} -> ${f.primaryAfter})`;
        assert.equal(f.affected, 0, `${what}: clients dropped`);
        assertNothingLost(f, what);
        if (kind === "primary-partition") {
          assert.equal(f.primaryAfter, f.primaryBefore, "no failover");
          assert.ok(f.buffered >= 1, `${what}: nothing was buffered`);
          assert.ok(f.replayed >= f.buffered, `${what}: writes not replayed`);
        } else {
          assert.notEqual(f.primaryAfter, f.primaryBefore, "no failover");
          assert.ok(f.failoversSeen >= 1, `${what}: an instance missed it`);
        }
      });
    }
    printStoreFaults(rows);
  },
});
