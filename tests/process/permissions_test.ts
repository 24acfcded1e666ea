/**
 * Least privilege, checked: the tasks that run the server and the compiled
 * binary carry the same narrow flags, the environment they may read is
 * exactly the variables ws-time declares, and no task gets everything.
 * (Every server-process test runs main.ts with the start task's flags, so
 * those flags are also proven sufficient.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { OPTIONS } from "../../server/config/schema.ts";
import { ROOT } from "../../dev/paths.ts";
import {
  SERVER_PERMISSIONS,
  taskPermissions,
} from "../../dev/server_process.ts";

const tasks: Record<string, string> = JSON.parse(
  Deno.readTextFileSync(`${ROOT}deno.json`),
).tasks;

Deno.test("deno.json: no task runs with -A or --allow-all", () => {
  for (const [name, command] of Object.entries(tasks)) {
    assert.doesNotMatch(command, /(^|\s)(-A|--allow-all)(\s|$)/, name);
  }
});

Deno.test("deno task compile gets exactly the start task's permissions", () => {
  assert.deepEqual(taskPermissions("compile"), taskPermissions("start"));
});

Deno.test("deno task start may read only the environment variables the server declares", () => {
  const flag = SERVER_PERMISSIONS.find((f) => f.startsWith("--allow-env"));
  const names = flag?.split("=")[1]?.split(",") ?? [];
  assert.deepEqual(names.sort(), OPTIONS.map((o) => o.env).sort());
});

Deno.test("deno task start may read only /proc, its config directory, systemd's credentials and /dev/null, and write nothing", () => {
  assert.ok(
    SERVER_PERMISSIONS.includes(
      "--allow-read=/proc,/etc/ws-time,/run/credentials,/dev/null",
    ),
  );
  for (const flag of SERVER_PERMISSIONS) {
    assert.doesNotMatch(flag, /^--allow-(write|run|ffi|import)/, flag);
    assert.notEqual(flag, "--allow-read");
    assert.notEqual(flag, "--allow-sys");
  }
});
