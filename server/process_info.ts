/**
 * The process's own figures for the `process_*` metrics: CPU time, start
 * time, resident memory, and open descriptors. Deno answers /proc/self/*
 * with "requires --allow-all", so the descriptor count is the number the
 * kernel hands out next (it always gives the lowest free one): the exact
 * count unless connections that closed recently left gaps below the
 * highest open descriptor, which new ones fill first.
 *
 * @module
 */

import fs from "node:fs";
import process from "node:process";

/** User and system CPU time so far, seconds. */
export function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** When the process started, seconds since the Unix epoch. */
export function startTimeSeconds(): number {
  return Math.floor(performance.timeOrigin) / 1000;
}

/** Resident memory, bytes. */
export function residentBytes(): number {
  return Deno.memoryUsage().rss;
}

/** Open descriptors (see above), or null where /dev/null cannot be read. */
export function openDescriptors(): number | null {
  try {
    const fd = fs.openSync("/dev/null", "r");
    fs.closeSync(fd);
    return fd;
  } catch {
    return null;
  }
}
