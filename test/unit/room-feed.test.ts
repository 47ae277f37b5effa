import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeCursor, encodeCursor, type CursorPosition } from "../../src/protocol/cursor.js";
import type { Envelope } from "../../src/protocol/events.js";
import { MAX_PENDING_EVENTS, RoomFeed, type FeedOutlets } from "../../src/realtime/room-feed.js";

const EPOCH = "e1";
const at = (seq: number, epoch = EPOCH): CursorPosition => ({ epoch, seq });
const event = (seq: number, epoch = EPOCH): Envelope => ({
  id: `id-${epoch}-${seq}`,
  type: "t",
  room: "r",
  cursor: encodeCursor(at(seq, epoch)),
  ts: "",
  data: null,
});
const seqOf = (e: Envelope): number => decodeCursor(e.cursor)!.seq;

/**
 * A room's log in memory and what the feed wrote: the feed is pure (it is handed its log reads and its
 * writes), so its ordering rules are tested here without a server; the same rules run against real nodes in
 * test/delivery.test.ts.
 */
class Harness {
  head = 0;
  epoch = EPOCH;
  readonly written: Envelope[] = [];
  readonly lost: string[] = [];
  readonly failures: unknown[] = [];
  failNext = 0;
  expiredBefore = 0;
  reads = 0;
  readonly feed: RoomFeed;

  constructor(overrides: Partial<FeedOutlets> = {}) {
    this.feed = new RoomFeed({
      log: {
        head: async () => {
          if (this.failNext > 0) {
            this.failNext--;
            throw new Error("database down");
          }
          return at(this.head, this.epoch);
        },
        page: async (from, upTo) => {
          this.reads++;
          if (from.seq < this.expiredBefore) throw Object.assign(new Error("expired"), { code: "CURSOR_EXPIRED" });
          const events: Envelope[] = [];
          for (let seq = from.seq + 1; seq <= Math.min(upTo.seq, from.seq + 3); seq++) events.push(event(seq, this.epoch));
          return events;
        },
      },
      write: (envelope) => this.written.push(envelope),
      lost: (reason) => this.lost.push(reason),
      failed: (error) => this.failures.push(error),
      filled: () => undefined,
      maxGap: 10_000,
      maxPendingBytes: 1_000_000,
      gapWaitMs: 5,
      retryMs: 5,
      ...overrides,
    });
  }

  /** What the adapter hook does with a live event: written if accepted, then `delivered`. */
  offer(seq: number, epoch = EPOCH): boolean {
    const envelope = event(seq, epoch);
    if (!this.feed.accept(envelope, at(seq, epoch), 100)) return false;
    this.written.push(envelope);
    this.feed.delivered(at(seq, epoch));
    return true;
  }

  seqs(): number[] {
    return this.written.map(seqOf);
  }
}

const settle = (ms = 40): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !predicate(); i++) await settle(5);
  assert.ok(predicate(), `timed out waiting for ${what}`);
}

describe("RoomFeed (pure): a room's live events on one node, once each, in cursor order", () => {
  it("keeps what arrives before it knows the room's head, then writes only what follows the head", async () => {
    const h = new Harness();
    h.head = 4;
    assert.equal(h.offer(4), false);
    assert.equal(h.offer(6), false);
    assert.equal(h.offer(5), false);
    await h.feed.start();
    assert.deepEqual(h.feed.position, at(6));
    assert.deepEqual(h.seqs(), [5, 6]);
  });

  it("writes the next event, drops one written already, and keeps one that comes ahead of a gap until the gap arrives", async () => {
    const h = new Harness();
    await h.feed.start();
    assert.equal(h.offer(1), true);
    assert.equal(h.offer(1), false, "a late copy");
    assert.equal(h.offer(3), false, "ahead of 2");
    assert.equal(h.offer(4), false);
    assert.equal(h.feed.pendingCount, 2);
    assert.equal(h.offer(2), true);
    assert.deepEqual(h.seqs(), [1, 2, 3, 4]);
    assert.equal(h.feed.pendingCount, 0);
    await settle();
    assert.equal(h.reads, 0, "nothing read from the log: the gap closed by itself");
  });

  it("a gap that does not close by itself is read from the log after the wait; the originals, when they come, are dropped", async () => {
    const h = new Harness();
    await h.feed.start();
    h.offer(1);
    h.head = 9;
    h.offer(9);
    await until(() => h.seqs().length === 9, "the gap filled");
    assert.deepEqual(h.seqs(), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(h.reads >= 3, "read in pages");
    for (const late of [2, 5, 8, 9]) assert.equal(h.offer(late), false);
    assert.equal(h.offer(10), true);
  });

  it("finds a gap with no later event (its broadcasts never arrived) from the room's head, and fills it", async () => {
    const h = new Harness();
    await h.feed.start();
    h.offer(1);
    h.head = 5;
    h.feed.check(at(5));
    await until(() => h.seqs().length === 5, "the fill");
    assert.deepEqual(h.seqs(), [1, 2, 3, 4, 5]);
    h.feed.check(at(5));
    await settle();
    assert.deepEqual(h.seqs(), [1, 2, 3, 4, 5], "a head it has reached changes nothing");
  });

  it("a failed read of the log is reported and tried again; nothing is skipped", async () => {
    const h = new Harness();
    await h.feed.start();
    h.head = 4;
    h.failNext = 2;
    h.offer(4);
    await until(() => h.seqs().length === 4, "the fill after the database came back");
    assert.equal(h.failures.length, 2);
    assert.deepEqual(h.seqs(), [1, 2, 3, 4]);
  });

  it("what the log no longer has is `lost`: the room's sockets start again, and the feed goes on from the head", async () => {
    const h = new Harness();
    await h.feed.start();
    h.head = 20;
    h.expiredBefore = 10;
    h.feed.setLag("s1", { reason: "replaying", position: at(0) });
    h.offer(20);
    await until(() => h.lost.length === 1, "lost");
    assert.deepEqual(h.feed.position, at(20));
    assert.equal(h.feed.lagging.size, 0);
    assert.equal(h.offer(21), true);
  });

  it("a new epoch of the room (its log was reset) is lost too; a stale copy of an older epoch is dropped", async () => {
    const h = new Harness();
    await h.feed.start();
    h.offer(1);
    assert.equal(h.offer(7, "old"), false);
    await settle();
    assert.deepEqual(h.lost, [], "the head is still of this epoch: nothing to do");
    h.epoch = "e2";
    h.head = 1;
    assert.equal(h.offer(1, "e2"), false);
    await until(() => h.lost.length === 1, "lost");
    assert.deepEqual(h.feed.position, at(1, "e2"));
    assert.equal(h.offer(2, "e2"), true);
  });

  it("a socket ahead of the feed goes live when the feed gets there", async () => {
    const h = new Harness();
    await h.feed.start();
    h.head = 3;
    h.feed.waitFor("s1", at(3));
    assert.equal(h.feed.lagging.get("s1")?.reason, "ahead");
    h.offer(1);
    assert.ok(h.feed.lagging.has("s1"));
    await until(() => !h.feed.lagging.has("s1"), "live at 3 (2 and 3 read from the log)");
    assert.deepEqual(h.seqs(), [1, 2, 3]);
  });

  it(`keeps at most ${MAX_PENDING_EVENTS} events (or its byte bound) ahead of a gap, then reads them from the log instead`, async () => {
    const h = new Harness({ maxPendingBytes: 100 * 50 });
    await h.feed.start();
    h.head = 80;
    for (let seq = 80; seq >= 2; seq--) h.offer(seq);
    assert.ok(h.feed.pendingCount <= 50);
    await until(() => h.seqs().length === 80, "all 80 from the log");
    assert.deepEqual(
      h.seqs(),
      Array.from({ length: 80 }, (_, i) => i + 1),
    );
  });

  it("property: events arriving in any order, some twice and some never, are written exactly once each, in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            order: fc.shuffledSubarray(
              Array.from({ length: n * 2 }, (_, i) => (i % n) + 1),
              { minLength: 0, maxLength: n * 2 },
            ),
          }),
        ),
        async ({ n, order }) => {
          const h = new Harness();
          await h.feed.start();
          h.head = n;
          for (const seq of order) h.offer(seq);
          h.feed.check(at(n));
          await until(() => h.seqs().length >= n, `${n} events`);
          await settle(10);
          assert.deepEqual(
            h.seqs(),
            Array.from({ length: n }, (_, i) => i + 1),
          );
        },
      ),
      { numRuns: 60 },
    );
  });
});
