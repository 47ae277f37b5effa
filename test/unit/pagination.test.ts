import assert from "node:assert/strict";
import { decodePageCursor, keysWithinBytes, toPage } from "../../src/domains/pagination.js";

const rows = Array.from({ length: 5 }, (_, i) => ({
  id: `r${i}`,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 10 - i)),
  text: "x".repeat(1000),
}));

describe("pages bounded in rows and bytes (pure)", () => {
  it("toPage trims the extra row and sets the cursor from the last item kept", () => {
    const page = toPage(rows.slice(0, 3), 2, (row) => row.id);
    assert.deepEqual(page.items, ["r0", "r1"]);
    assert.equal(decodePageCursor(page.nextCursor!).id, "r1");
    assert.equal(toPage(rows.slice(0, 2), 2, (row) => row.id).nextCursor, null);
  });

  it("toPage ends the page before the item that passes maxBytes, and always keeps the first", () => {
    const page = toPage(rows, 10, (row) => row, 512 + 2 * 1100);
    assert.equal(page.items.length, 2);
    assert.equal(decodePageCursor(page.nextCursor!).id, "r1");
    const one = toPage(rows, 10, (row) => row, 10);
    assert.equal(one.items.length, 1, "a page too small for any item still moves on");
    assert.equal(decodePageCursor(one.nextCursor!).id, "r0");
  });

  it("toPage with `more` sets the cursor although every row given was kept", () => {
    assert.equal(decodePageCursor(toPage(rows.slice(0, 2), 10, (row) => row.id, Infinity, true).nextCursor!).id, "r1");
  });

  it("keysWithinBytes keeps the keys whose stored sizes fit, asking for sizes in batches", async () => {
    const asked: string[][] = [];
    const sizes = async (ids: string[]) => {
      asked.push(ids);
      return new Map(ids.map((id) => [id, 10_000]));
    };
    const fit = await keysWithinBytes(rows, 4, 512 + 2 * (10_000 + 1024), sizes);
    assert.deepEqual(
      fit.keys.map((k) => k.id),
      ["r0", "r1"],
    );
    assert.equal(fit.more, true);
    assert.deepEqual(asked, [["r0", "r1", "r2", "r3"]], "the extra row is never sized");
    const all = await keysWithinBytes(rows.slice(0, 3), 4, 1e9, sizes);
    assert.deepEqual([all.keys.length, all.more], [3, false]);
    const oneBig = await keysWithinBytes(rows, 4, 100, sizes);
    assert.deepEqual([oneBig.keys.map((k) => k.id), oneBig.more], [["r0"], true]);
  });
});
