/**
 * A seeded generator of malformed WebSocket upgrade requests, each with the
 * status the handler must answer. A case starts from a valid upgrade, gets
 * one to three defects (bad method, path, Upgrade or Connection header,
 * version, key, label, Origin, or an over-long URL) and some harmless noise
 * (extra headers, odd header case, junk session tokens, subprotocols); the
 * expected status is that of the defect the handler checks first. Same seed,
 * same cases, so a failure names a reproducible case number.
 *
 * @module
 */

import { seededRandom } from "../../dev/random.ts";

/** One generated request and what must come back. */
export interface UpgradeCase {
  readonly index: number;
  readonly method: string;
  /** Path and query, exactly as sent. */
  readonly target: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The status the handler must answer. */
  readonly expect: number;
  /** The defects applied, for failure messages. */
  readonly defects: readonly string[];
}

type Draft = {
  method: string;
  path: string;
  query: string[];
  headers: Map<string, string>;
};

interface Defect {
  readonly name: string;
  /** Handler order: the lowest rank present decides the status. */
  readonly rank: number;
  readonly status: number;
  apply(draft: Draft, pick: <T>(items: readonly T[]) => T): void;
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A defect that sets `header` to one of `values` (null removes it). */
function headerDefect(
  name: string,
  rank: number,
  status: number,
  header: string,
  values: ReadonlyArray<string | null>,
): Defect {
  return {
    name,
    rank,
    status,
    apply(draft, pick) {
      const value = pick(values);
      if (value === null) draft.headers.delete(header);
      else draft.headers.set(header, value);
    },
  };
}

const DEFECTS: readonly Defect[] = [
  {
    name: "url-too-long",
    rank: 0,
    status: 414,
    apply: (d) => d.query.push(`pad=${"x".repeat(8300)}`),
  },
  {
    name: "path",
    rank: 1,
    status: 404,
    apply: (d, pick) => {
      d.path = pick([
        "/x",
        "/index.html",
        "/healthcheck",
        "//",
        "/ws",
        "/a/b",
      ]);
    },
  },
  {
    // After "path", which it overrides: a path in a spelling URL parsing
    // would rewrite is refused before any route.
    name: "path-spelling",
    rank: 0.5,
    status: 400,
    apply: (d, pick) => {
      d.path = pick(["/a/../b", "/./", "/x\\..\\", "/%2e%2e/"]);
    },
  },
  headerDefect("upgrade-value", 2, 400, "upgrade", [
    "h2c",
    "websocket2",
    "",
    "web socket",
    "WebSocket, h2c",
    "ws",
  ]),
  {
    name: "method",
    rank: 3,
    status: 405,
    apply: (d, pick) => {
      d.method = pick([
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "OPTIONS",
        "PROPFIND",
      ]);
    },
  },
  headerDefect("connection", 4, 400, "connection", [
    null,
    "keep-alive",
    "upgrad",
    "Upgrade2",
    "x",
  ]),
  headerDefect("version", 5, 426, "sec-websocket-version", [
    null,
    "12",
    "8",
    "",
    "14",
    "13,8",
    "abc",
    "013",
  ]),
  headerDefect("key", 6, 400, "sec-websocket-key", [
    null,
    "",
    "short==",
    KEY.slice(0, 22),
    KEY + "AAAA",
    KEY.replace("==", "=A"),
    "dGhlIHNhbXBsZSBub25j*Q==",
    "===",
    "dGhlIHNhbXBsZSBub25jZQ",
  ]),
  {
    name: "label",
    rank: 7,
    status: 400,
    apply: (d, pick) =>
      d.query.push(
        "id=" +
          pick([
            "a".repeat(65),
            "a%20b",
            "%3Cscript%3E",
            "%C3%A9",
            "a/b",
            "%00",
          ]),
      ),
  },
  {
    name: "origin",
    rank: 8,
    status: 403,
    apply: (d, pick) => {
      const host = d.headers.get("host") ?? "";
      d.headers.set(
        "origin",
        pick([
          "null",
          "http://evil.example",
          `http://${host}.evil.example`,
          `http://evil${host}`,
          `http://${host.replace(/:\d+$/, "")}:1`,
          `ftp://${host}`,
          `http://${host}/page`,
          `http://user@${host}`,
          "*",
          "",
        ]),
      );
    },
  },
];

/** `count` malformed upgrades for a server whose Host is `host`. */
export function malformedUpgrades(
  seed: number,
  count: number,
  host: string,
): UpgradeCase[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T =>
    items[Math.floor(random() * items.length)]!;
  const cases: UpgradeCase[] = [];
  for (let index = 0; index < count; index++) {
    const draft: Draft = {
      method: "GET",
      path: "/",
      query: [],
      headers: new Map([
        ["host", host],
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-version", "13"],
        ["sec-websocket-key", KEY],
      ]),
    };
    addNoise(draft, random, pick);
    const defects = new Set<Defect>();
    const wanted = 1 + Math.floor(random() * random() * 3);
    while (defects.size < wanted) defects.add(pick(DEFECTS));
    // In table order, so a defect listed later overrides an earlier one on
    // the same field (the path's spelling over the path).
    for (const defect of DEFECTS.filter((d) => defects.has(d))) {
      defect.apply(draft, pick);
    }
    const first = [...defects].sort((a, b) => a.rank - b.rank)[0]!;
    const target = draft.path +
      (draft.query.length ? `?${draft.query.join("&")}` : "");
    const headers = [...draft.headers].map(([name, value]) =>
      [random() < 0.3 ? name.toUpperCase() : name, value] as const
    );
    cases.push({
      index,
      method: draft.method,
      target,
      headers,
      expect: first.status,
      defects: [...defects].map((d) => d.name),
    });
  }
  return cases;
}

function addNoise(
  draft: Draft,
  random: () => number,
  pick: <T>(items: readonly T[]) => T,
): void {
  if (random() < 0.4) {
    const alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const length = pick([0, 10, 57, 58, 59, 200]);
    let token = "";
    for (let i = 0; i < length; i++) token += pick([...alphabet]);
    draft.query.push(`session=${token}`);
  }
  if (random() < 0.3) {
    draft.headers.set(
      "sec-websocket-protocol",
      pick(["ws-time.v1", "chat", "ws-time.v1, x", ""]),
    );
  }
  if (random() < 0.3) {
    draft.headers.set("sec-websocket-extensions", "permessage-deflate");
  }
  const extra = Math.floor(random() * 4);
  for (let i = 0; i < extra; i++) {
    draft.headers.set(`x-noise-${i}`, String(Math.floor(random() * 1e9)));
  }
}

/** The case as a Request for calling the handler directly. */
export function toRequest(item: UpgradeCase): Request {
  const host = item.headers.find(([n]) => n.toLowerCase() === "host")?.[1];
  return new Request(`http://${host}${item.target}`, {
    method: item.method,
    headers: item.headers.filter(([n]) => n.toLowerCase() !== "host").concat(
      [["host", host ?? ""]],
    ) as [string, string][],
  });
}

/** The case as HTTP/1.1 bytes for a raw socket. */
export function toWire(item: UpgradeCase): string {
  const lines = item.headers.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  return `${item.method} ${item.target} HTTP/1.1\r\n${lines}\r\n`;
}
