/**
 * The default server name: a random readable adjective-animal pair, so the
 * instances of a fleet can be told apart in logs and on the page without
 * naming each one.
 *
 * @module
 */

import {
  adjectives,
  animals,
  uniqueNamesGenerator,
} from "unique-names-generator";

/** A random readable server name such as "brave-otter". */
export function randomName(): string {
  return uniqueNamesGenerator({
    dictionaries: [adjectives, animals],
    separator: "-",
    length: 2,
  });
}
