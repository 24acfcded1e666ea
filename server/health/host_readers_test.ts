import assert from "node:assert/strict";
import {
  externalTraffic,
  hostTrafficReader,
  parseProcNetDev,
  processTrafficReader,
  reportedLinkMbps,
  WIRE_OVERHEAD_BYTES,
} from "./host_readers.ts";

const PROC_NET_DEV =
  `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   35301     335    0    0    0     0          0         0    35301     335    0    0    0     0       0          0
  eth0: 184909320    5563    0    0    0     0          0         0   214236    2992    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0      50       1    0    0    0     0       0          0
`;

function files(map: Record<string, string>) {
  return (path: string) => {
    const text = map[path];
    if (text === undefined) throw new Deno.errors.NotFound(path);
    return text;
  };
}

Deno.test("parseProcNetDev() reads receive and transmit bytes per interface", () => {
  const parsed = parseProcNetDev(PROC_NET_DEV);
  assert.deepEqual(parsed.get("eth0"), {
    bytesIn: 184909320,
    bytesOut: 214236,
  });
  assert.deepEqual(externalTraffic(parsed), {
    bytesIn: 184909420,
    bytesOut: 214286,
  });
});

Deno.test("hostTrafficReader() is null when /proc/net/dev cannot be read", () => {
  assert.equal(hostTrafficReader(files({})), null);
  const read = hostTrafficReader(files({ "/proc/net/dev": PROC_NET_DEV }));
  assert.equal(read!()!.bytesOut, 214286);
});

Deno.test("reportedLinkMbps() sums interfaces that report a speed", () => {
  assert.equal(
    reportedLinkMbps(files({
      "/proc/net/dev": PROC_NET_DEV,
      "/sys/class/net/lo/speed": "10000\n",
      "/sys/class/net/eth0/speed": "1000\n",
      "/sys/class/net/eth1/speed": "-1\n",
    })),
    1000,
  );
  assert.equal(reportedLinkMbps(files({ "/proc/net/dev": PROC_NET_DEV })), 0);
  assert.equal(reportedLinkMbps(files({})), 0);
});

Deno.test("processTrafficReader() adds the wire overhead of each message", () => {
  const read = processTrafficReader(() => ({
    bytesIn: 10,
    bytesOut: 1000,
    messagesIn: 1,
    messagesOut: 20,
  }));
  assert.deepEqual(read(), {
    bytesIn: 10 + WIRE_OVERHEAD_BYTES,
    bytesOut: 1000 + 20 * WIRE_OVERHEAD_BYTES,
  });
});
