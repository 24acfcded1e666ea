/**
 * The session store on a Redis Cluster under load: three primaries and
 * three replicas, each on a host of its own (network namespaces), three
 * instances with --redis-cluster, 300 clients through HAProxy. One shard's
 * primary is killed (its replica promoted), frozen past the node timeout,
 * cut off from one instance only, and its slots are moved to another shard
 * while an instance's clients resume elsewhere. No client may lose its
 * count, no record may be lost, no session may be live twice.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FaultBed } from "../../dev/fault_bed.ts";
import {
  CLUSTER_FAULTS,
  runStoreFault,
  type StoreFaultFigures,
} from "../../dev/fault_scenarios.ts";
import { netnsUnavailable } from "../../dev/netns.ts";
import { assertNothingLost, printStoreFaults } from "../helpers/store_fault.ts";
import { waitFor } from "../../dev/timing.ts";

const unavailable = netnsUnavailable();

Deno.test({
  name: unavailable === null
    ? "--redis-cluster: a shard's primary killed, frozen and cut off, and a resharding, cost 300 clients nothing"
    : `--redis-cluster (skipped: cannot create network namespaces here: ${unavailable})`,
  ignore: unavailable !== null,
  async fn(t) {
    await using bed = await FaultBed.start({ clients: 300, store: "cluster" });
    await waitFor(
      async () => (await bed.status()).connected === bed.clients,
      30_000,
      "every client connected",
    );
    // The sessions are spread over the three shards by their hash tags:
    // 14, 25 and 25 of the 64 tags, so the smallest shard expects 66 of 300
    // (sd 7); one tag for all would leave two shards empty.
    const shares = await bed.sessionRecords();
    assert.equal(shares.length, 3);
    assert.ok(shares.every((n) => n >= 30), `records per shard: ${shares}`);
    const rows: StoreFaultFigures[] = [];
    for (const kind of CLUSTER_FAULTS) {
      await t.step(kind, async () => {
        const f = await runStoreFault(bed, kind, {
          holdMs: 4_000,
          lossyMs: 0,
          settleMs: 45_000,
        });
        rows.push(f);
        const what = `${kind} (${f.primaryBefore} -> ${f.primaryAfter})`;
        assertNothingLost(f, what);
        if (kind === "reshard") {
          // The killed instance's clients all came back, with their counts.
          assert.ok(f.affected > 0, `${what}: nobody had to resume`);
          assert.equal(f.resumed, f.affected, `${what}: not all resumed`);
        } else {
          assert.equal(f.affected, 0, `${what}: clients dropped`);
        }
        if (kind === "primary-kill" || kind === "primary-freeze") {
          assert.notEqual(f.primaryAfter, f.primaryBefore, "no failover");
          assert.ok(f.failoversSeen >= 1, `${what}: an instance missed it`);
        }
        if (kind === "primary-partition") {
          assert.equal(f.primaryAfter, f.primaryBefore, "no failover");
          // Only a third of the slots are cut off, and the balancer may send
          // no new client to the cut instance: the cut shows as writes
          // buffered, or as time without a writable store, or both.
          assert.ok(
            f.buffered >= 1 || f.notWritableMs > 0,
            `${what}: the cut was not felt`,
          );
          assert.ok(f.replayed >= f.buffered, `${what}: writes not replayed`);
        }
      });
    }
    printStoreFaults(rows);
  },
});
