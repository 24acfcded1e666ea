/**
 * How a session lives in Redis, and the two scripts that change it
 * atomically. One string key per session, `<start>:<epoch>:<live>:<holder>`
 * (`<start>:<epoch>:<live>` from versions before holders, and while any
 * instance of one is in the fleet: they read nothing else; a bare `<start>`
 * from older versions still reads as epoch 0, not live), so a session
 * still costs one SET when it starts and one key lives in one hash slot.
 * The holder is the instance that wrote the record: a takeover is sent to
 * it alone, so an instance hears only the takeovers of its own sessions.
 * The claim and the release must read and write in one step, or two
 * instances could both take a session, or a stale release could mark a
 * newer connection's session as closed: hence Lua, run by EVALSHA with a
 * fallback to EVAL when Redis has not seen the script (after a restart or
 * a failover). Claims arriving together (a storm of resumes) go as one
 * script call (in a cluster, one per shard): the keys are independent, the
 * batch only shares the trip.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ErrorReply } from "@redis/client";
import type { SessionRecord } from "./store.ts";

/**
 * The record format this build reads: 2 has the holder. Advertised in the
 * fleet's presence, so that holders are written only once every instance
 * sharing the store reads them.
 */
export const RECORD_FORMAT = 2;

/** A holder: an instance id, as records and channel names carry it. */
const HOLDER = "[A-Za-z0-9_-]{1,64}";

/** What an instance id may be: it goes into records and channel names. */
export const HOLDER_PATTERN: RegExp = new RegExp(`^${HOLDER}$`);

/** A stored record, either format, or a bare start from older versions. */
const RECORD_PATTERN = new RegExp(
  `^(\\d{1,16})(?::(\\d{1,10}):([01])(?::${HOLDER})?)?$`,
);

/** The stored text of a record, naming `holder` when given. */
export function encodeRecord(record: SessionRecord, holder = ""): string {
  const text = `${record.start}:${record.epoch}:${record.live ? 1 : 0}`;
  return holder === "" ? text : `${text}:${holder}`;
}

/** A stored text as a record; null for anything that is not one. */
export function decodeRecord(text: string | null): SessionRecord | null {
  if (text === null) return null;
  const match = RECORD_PATTERN.exec(text);
  if (!match) return null;
  const start = Number(match[1]);
  if (!Number.isSafeInteger(start)) return null;
  return {
    start,
    epoch: match[2] === undefined ? 0 : Number(match[2]),
    live: match[3] === "1",
  };
}

// How both scripts read and write a record, so that they cannot differ:
// parse() gives start, epoch, live and holder (nil in a record from before
// holders), or nil for anything else; tail() is what names holder h at a
// record's end ('' for no holder).
const RECORD_LUA = `
local function parse(v)
  local s, e, l, h = string.match(v, '^(%d+):(%d+):([01]):([%w_%-]+)$')
  if s then return s, e, l, h end
  return string.match(v, '^(%d+):(%d+):([01])$')
end
local function tail(h)
  if h == '' then return '' end
  return ':' .. h
end
`;

// The same rule as claimRecord() in store.ts, inside Redis, for a batch of
// sessions. ARGV is the grace period in seconds, the command that
// publishes a takeover (PUBLISH, or SPUBLISH in a cluster that has sharded
// pub/sub), this instance's id, the holder to write ("" while an instance
// that cannot read holders shares the store, else the id), then four
// strings per session: its key, id, presented epoch and takeover channel.
// KEYS declares the keys for routing: all of them when they share a slot;
// in a cluster, a batch may span the slots one node serves, and declares
// only its first (Redis refuses declared keys of different slots, not
// undeclared ones of its own). Every key is read before anything is
// written, so a key this node does not serve (the slot moved) fails the
// call before it changed anything, and the caller may split the batch by
// slot and retry. Three strings per session come back: start, epoch and
// "1" when superseded, "0" when taken, or three empty strings when the
// session is unknown. A takeover is published here, in the same step, so
// a resume costs no second command: to the channel of the record's holder
// (`<channel>@<holder>`) when it names one, to the channel every instance
// hears when not, and not at all when the holder is this instance (it
// closes its own older connection itself); a sharded channel shares its
// session's slot. A session claimed twice in one batch (a client that gave
// up on a queued handshake and retried) goes to the later claim: the
// earlier one's connection has not been welcomed, so no client can hold
// its token. Numbers stay strings where Lua's doubles could round them
// (the start in ms).
const CLAIM = `${RECORD_LUA}
local values = {}
for i = 5, #ARGV, 4 do
  values[ARGV[i]] = redis.call('GET', ARGV[i])
end
local out = {}
local taken = {}
for i = 5, #ARGV, 4 do
  local key = ARGV[i]
  local id = ARGV[i + 1]
  local presented = tonumber(ARGV[i + 2])
  local v = values[key]
  local s, e, l, h
  if v then
    s, e, l, h = parse(v)
    if not s then
      s = string.match(v, '^(%d+)$')
      e = '0'
      l = '0'
    end
  end
  if not s or not presented then
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = ''
  elseif tonumber(e) > presented and l == '1' and not taken[key] then
    out[#out + 1] = s
    out[#out + 1] = e
    out[#out + 1] = '1'
  else
    local n = tostring(math.max(tonumber(e), presented) + 1)
    taken[key] = true
    values[key] = s .. ':' .. n .. ':1' .. tail(ARGV[4])
    redis.call('SET', key, values[key], 'EX', ARGV[1])
    local message = ARGV[3] .. ' ' .. id .. ' ' .. n
    if not h then
      redis.call(ARGV[2], ARGV[i + 3], message)
    elseif h ~= ARGV[3] then
      redis.call(ARGV[2], ARGV[i + 3] .. '@' .. h, message)
    end
    out[#out + 1] = s
    out[#out + 1] = n
    out[#out + 1] = '0'
  end
end
return out
`;

// ARGV: the epoch of the hold that ends, the grace period in seconds, and
// the holder to write, as for CLAIM.
const RELEASE = `${RECORD_LUA}
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local s, e = parse(v)
if not s or e ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], s .. ':' .. e .. ':0' .. tail(ARGV[3]), 'EX', ARGV[2])
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

/**
 * Claims a batch of sessions and announces each takeover: per session
 * `start, epoch, superseded` ("1"/"0"), or three empty strings when unknown.
 */
export const CLAIM_SCRIPT: Script = script(CLAIM);
/** Ends a connection's hold on its session if it is still the newest. */
export const RELEASE_SCRIPT: Script = script(RELEASE);

/** What a client must offer to run a script. */
export interface CommandSender {
  send(args: string[]): Promise<unknown>;
}

/** Runs `s` on `keys`, loading it first if Redis does not know it. */
export async function runScript(
  client: CommandSender,
  s: Script,
  keys: readonly string[],
  args: readonly string[],
): Promise<unknown> {
  const rest = [String(keys.length), ...keys, ...args];
  try {
    return await client.send(["EVALSHA", s.sha1, ...rest]);
  } catch (error) {
    if (!(error instanceof ErrorReply) || !/^NOSCRIPT/.test(error.message)) {
      throw error;
    }
    return await client.send(["EVAL", s.source, ...rest]);
  }
}
