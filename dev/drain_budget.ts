/**
 * How long an instance may take to leave, from SIGTERM to exit, for the
 * settings a deploy kit gives it: every stop timeout the kit ships (the
 * systemd unit's, the pod's grace period, a balancer's deregistration
 * delay) must outlast it, or the last clients are cut without a hint.
 *
 * @module
 */

import { parseDuration } from "../server/config/parse.ts";
import { OPTIONS } from "../server/config/schema.ts";

/** The slack a drain's last movers need after their hint: up to 1 s. */
const LAST_HINT_MS = 1000;

/**
 * The drain's length in ms for an environment (unset variables take the
 * defaults): the delay, the wait for a replacement, the period, the last
 * movers' hint and their move window.
 */
export function drainBudgetMs(
  env: Readonly<Record<string, string | undefined>>,
): number {
  const setting = (name: string) => {
    const option = OPTIONS.find((o) => o.env === name);
    if (option === undefined) throw new Error(`no option reads ${name}`);
    const ms = parseDuration(env[name] ?? option.fallback);
    if (ms === null) throw new Error(`${name}: not a duration`);
    return ms;
  };
  return setting("DRAIN_DELAY") + setting("DRAIN_HANDOVER") +
    setting("DRAIN_PERIOD") + LAST_HINT_MS + setting("MOVE_WINDOW");
}
