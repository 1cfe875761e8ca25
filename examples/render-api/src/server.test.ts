import { test } from "node:test";
import assert from "node:assert";

test("page size is 20", () => {
  assert.strictEqual(20, 20);
});
