/**
 * Where the repository is, for tests and the bench that start its programs
 * or read its files.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** Repository root (absolute path). */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
