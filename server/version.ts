/**
 * The version of ws-time, written once: `--version`, the
 * `wstime_build_info` metric and the startup line read it from here.
 *
 * @module
 */

/** The release this tree is. */
export const VERSION = "1.0.0";
