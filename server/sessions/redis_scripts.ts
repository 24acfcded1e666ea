/**
 * How a session lives in Redis, and the two scripts that change it
 * atomically. One string key per session, `<start>:<epoch>:<live>` (a bare
 * `<start>` from older versions reads as epoch 0, not live), so a session
 * still costs one SET when it starts and one key lives in one hash slot.
 * The claim and the release must read and write in one step, or two
 * instances could both take a session, or a stale release could mark a
 * newer connection's session as closed: hence Lua, run by EVALSHA with a
 * fallback to EVAL when Redis has not seen the script (after a restart or
 * a failover).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ErrorReply } from "@redis/client";
import type { SessionRecord } from "./store.ts";

/** The stored text of a record. */
export function encodeRecord(record: SessionRecord): string {
  return `${record.start}:${record.epoch}:${record.live ? 1 : 0}`;
}

/** A stored text as a record; null for anything that is not one. */
export function decodeRecord(text: string | null): SessionRecord | null {
  if (text === null) return null;
  const match = /^(\d{1,16})(?::(\d{1,10}):([01]))?$/.exec(text);
  if (!match) return null;
  const start = Number(match[1]);
  if (!Number.isSafeInteger(start)) return null;
  return {
    start,
    epoch: match[2] === undefined ? 0 : Number(match[2]),
    live: match[3] === "1",
  };
}

// The same rule as claimRecord() in store.ts, inside Redis. Numbers stay
// strings where Lua's doubles could round them (the start in ms).
const CLAIM = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local s, e, l = string.match(v, '^(%d+):(%d+):([01])$')
if not s then
  s = string.match(v, '^(%d+)$')
  if not s then return false end
  e = '0'
  l = '0'
end
local epoch = tonumber(e)
local presented = tonumber(ARGV[1])
if epoch > presented and l == '1' then return {s, e, '1'} end
local n = math.max(epoch, presented) + 1
redis.call('SET', KEYS[1], s .. ':' .. n .. ':1', 'EX', ARGV[2])
return {s, tostring(n), '0'}
`;

const RELEASE = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local s, e = string.match(v, '^(%d+):(%d+):[01]$')
if not s or e ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], s .. ':' .. e .. ':0', 'EX', ARGV[2])
return 1
`;

/** A Lua script and its SHA1, as EVALSHA names it. */
export interface Script {
  readonly source: string;
  readonly sha1: string;
}

function script(source: string): Script {
  return { source, sha1: createHash("sha1").update(source).digest("hex") };
}

/** Claims a session: `{start, epoch, superseded}`, or nil when unknown. */
export const CLAIM_SCRIPT: Script = script(CLAIM);
/** Ends a connection's hold on its session if it is still the newest. */
export const RELEASE_SCRIPT: Script = script(RELEASE);

/** What a client must offer to run a script. */
export interface CommandSender {
  send(args: string[]): Promise<unknown>;
}

/** Runs `s` on one key, loading it first if Redis does not know it. */
export async function runScript(
  client: CommandSender,
  s: Script,
  key: string,
  args: readonly string[],
): Promise<unknown> {
  try {
    return await client.send(["EVALSHA", s.sha1, "1", key, ...args]);
  } catch (error) {
    if (!(error instanceof ErrorReply) || !/^NOSCRIPT/.test(error.message)) {
      throw error;
    }
    return await client.send(["EVAL", s.source, "1", key, ...args]);
  }
}
