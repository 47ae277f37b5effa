import assert from "node:assert/strict";
import { CronExpressionParser } from "cron-parser";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import type { Envelope } from "../src/protocol/events.js";
import type { ScheduleView } from "../src/protocol/views.js";
import { connect, EventRecorder, sleep, subscribe } from "./support/clients.js";
import { dropDatabase, setupDatabase } from "../src/db/setup.js";
import { freshTenant, TEST_DATABASE_URL, TEST_REDIS_URL } from "./support/env.js";
import { api } from "./support/http.js";
import { isolatedNodeEnv, isolatedPrefix } from "./support/isolation.js";
import { startServer, type ServerProcess } from "./support/server.js";
import { sharedServer } from "./support/shared.js";
import { scrape, total } from "./support/metrics.js";
import { mintToken } from "./support/tokens.js";

/** The schedules' rows of a tenant, and the due times their tasks were made for (from each task's Idempotency-Key). */
async function query<T>(sql: string, params: unknown[], database = TEST_DATABASE_URL): Promise<T[]> {
  const db = new pg.Client({ connectionString: database });
  await db.connect();
  try {
    return (await db.query(sql, params)).rows as T[];
  } finally {
    await db.end();
  }
}

async function dueTimes(scheduleId: string, database: string): Promise<number[]> {
  const rows = await query<{ key: string }>(`SELECT "idempotencyKey" AS key FROM "Task" WHERE "scheduleId" = $1`, [scheduleId], database);
  return rows.map((row) => Date.parse(row.key.split(" ")[2]!)).sort((a, b) => a - b);
}

async function scheduleRows(tenant: string, database = TEST_DATABASE_URL): Promise<number> {
  return (await query<{ n: number }>(`SELECT count(*)::int AS n FROM "Schedule" WHERE "tenantId" = $1`, [tenant], database))[0]!.n;
}

/** The next due time BullMQ holds for a schedule (ms), or null without a scheduler. */
async function schedulerNext(prefix: string, tenant: string, scheduleId: string): Promise<number | null> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const score = await redis.zscore(`${prefix}:bull:schedules:repeat`, `${tenant}.${scheduleId}`);
    return score === null ? null : Number(score);
  } finally {
    redis.disconnect();
  }
}

describe("schedules", () => {
  let url: string;
  before(async () => {
    url = (await sharedServer()).url;
  });

  it("create, read, list, change, pause and delete, each announced in the /tasks room `schedules`", async () => {
    const tenant = freshTenant("sched");
    const token = mintToken({ tenant });
    const socket = await connect(url, "tasks", { token });
    const seen = new EventRecorder(socket);
    assert.equal((await subscribe(socket, "schedules")).ok, true);

    const before = Date.now();
    const created = await api(url, "POST", "/api/v1/schedules", {
      token,
      body: { name: "nightly", task: { type: "echo", payload: { n: 1 } }, cron: "0 3 * * *", timezone: "europe/berlin" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const schedule = created.body.schedule as ScheduleView;
    assert.match(schedule.id, /^[0-9a-f-]{36}$/);
    assert.equal(schedule.paused, false);
    assert.equal(schedule.timezone, "Europe/Berlin", "the time zone in its canonical spelling");
    assert.deepEqual(schedule.task, { type: "echo", payload: { n: 1 }, poolId: "default", priority: 50, maxAttempts: 1, timeoutMs: null });
    const expected = CronExpressionParser.parse("0 3 * * *", { tz: "Europe/Berlin", currentDate: new Date(before) })
      .next()
      .toDate()
      .toISOString();
    assert.equal(schedule.nextRunAt, expected);

    const read = await api(url, "GET", `/api/v1/schedules/${schedule.id}`, { token });
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.schedule, schedule, "GET reads the scheduler's next due time: the one announced");
    const listed = await api(url, "GET", "/api/v1/schedules", { token });
    assert.deepEqual(listed.body, { items: [schedule], nextCursor: null });

    const retemplated = await api(url, "PATCH", `/api/v1/schedules/${schedule.id}`, {
      token,
      body: { task: { type: "echo", payload: { n: 2 }, priority: 80 } },
    });
    assert.equal(retemplated.status, 200, JSON.stringify(retemplated.body));
    assert.deepEqual(retemplated.body.schedule.task.payload, { n: 2 });
    assert.equal(retemplated.body.schedule.nextRunAt, expected, "a new template keeps the due times");
    const sameAgain = await api(url, "PATCH", `/api/v1/schedules/${schedule.id}`, {
      token,
      body: { task: { priority: 80, payload: { n: 2 }, type: "echo" } },
    });
    assert.equal(sameAgain.status, 200, "the same template again (fields in another order) changes nothing and announces nothing");

    const paused = await api(url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { paused: true } });
    assert.equal(paused.status, 200);
    assert.equal(paused.body.schedule.paused, true);
    assert.equal(paused.body.schedule.nextRunAt, null);
    const again = await api(url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { paused: true } });
    assert.equal(again.status, 200, "a repeated PATCH is idempotent");

    const retimed = await api(url, "PATCH", `/api/v1/schedules/${schedule.id}`, {
      token,
      body: { paused: false, timezone: "Asia/Kolkata" },
    });
    assert.equal(retimed.status, 200, JSON.stringify(retimed.body));
    assert.equal(
      retimed.body.schedule.nextRunAt,
      CronExpressionParser.parse("0 3 * * *", { tz: "Asia/Kolkata", currentDate: new Date() }).next().toDate().toISOString(),
    );

    const deleted = await api(url, "DELETE", `/api/v1/schedules/${schedule.id}`, { token });
    assert.equal(deleted.status, 204);
    assert.equal((await api(url, "GET", `/api/v1/schedules/${schedule.id}`, { token })).status, 404);
    assert.equal((await api(url, "DELETE", `/api/v1/schedules/${schedule.id}`, { token })).status, 404);

    await seen.until((events) => events.some((e) => e.type === "schedule.deleted"));
    assert.deepEqual(
      seen.events.map((e) => [e.type, e.room, (e.data as { changed?: string[] }).changed ?? null]),
      [
        ["schedule.created", "schedules", null],
        ["schedule.updated", "schedules", ["task"]],
        ["schedule.updated", "schedules", ["paused"]],
        ["schedule.updated", "schedules", ["paused", "timezone"]],
        ["schedule.deleted", "schedules", null],
      ],
    );
    assert.deepEqual((seen.events[0] as Envelope<{ schedule: ScheduleView }>).data.schedule, schedule);
    assert.equal(await scheduleRows(tenant), 0);
  });

  it("refuses bad input with a 4xx naming the field, and stores nothing", async () => {
    const tenant = freshTenant("sched-bad");
    const token = mintToken({ tenant });
    const task = { type: "echo" };
    const cases: Array<[string, Record<string, unknown>, number, string]> = [
      ["unknown field", { name: "a", task, every: 1000, colour: "red" }, 400, "colour"],
      ["unknown task field", { name: "a", task: { ...task, retries: 3 }, every: 1000 }, 400, "task.retries"],
      ["every < 1000", { name: "a", task, every: 999 }, 400, "every"],
      ["every not an integer", { name: "a", task, every: 1500.5 }, 400, "every"],
      ["neither every nor cron", { name: "a", task }, 400, "every"],
      ["both every and cron", { name: "a", task, every: 1000, cron: "* * * * *" }, 400, "every"],
      ["a bad cron expression", { name: "a", task, cron: "61 * * * *" }, 400, "cron"],
      ["six cron fields", { name: "a", task, cron: "* * * * * *" }, 400, "cron"],
      ["a cron alias", { name: "a", task, cron: "@daily" }, 400, "cron"],
      ["a cron that never comes", { name: "a", task, cron: "0 0 31 2 *" }, 400, "cron"],
      ["a bad time zone", { name: "a", task, cron: "0 3 * * *", timezone: "Mars/Olympus" }, 400, "timezone"],
      ["a time zone of odd characters", { name: "a", task, cron: "0 3 * * *", timezone: "Europe/Berlin\u0000" }, 400, "timezone"],
      ["a time zone with every", { name: "a", task, every: 1000, timezone: "UTC" }, 400, "timezone"],
      ["an unknown task type", { name: "a", task: { type: "no-such-type" }, every: 1000 }, 400, "task.type"],
      ["a missing pool", { name: "a", task: { type: "echo", poolId: "no-such-pool" }, every: 1000 }, 404, "task.poolId"],
      ["no name", { task, every: 1000 }, 400, "name"],
    ];
    for (const [what, body, status, field] of cases) {
      const response = await api(url, "POST", "/api/v1/schedules", { token, body });
      assert.equal(response.status, status, `${what}: ${JSON.stringify(response.body)}`);
      const fields = (response.body.error.details as Array<{ field: string }>).map((d) => d.field);
      assert.ok(fields.includes(field), `${what}: names ${field} (got ${fields.join(", ")}; ${response.body.error.message})`);
    }
    assert.equal(await scheduleRows(tenant), 0, "nothing stored");

    const good = await api(url, "POST", "/api/v1/schedules", { token, body: { name: "hourly", task, cron: "0 * * * *" } });
    assert.equal(good.status, 201, JSON.stringify(good.body));
    const id = good.body.schedule.id as string;
    const duplicate = await api(url, "POST", "/api/v1/schedules", { token, body: { name: "hourly", task, every: 5000 } });
    assert.equal(duplicate.status, 409);
    assert.equal(duplicate.body.error.details[0].field, "name");

    const patches: Array<[string, unknown, number, string]> = [
      ["unknown field", { name: "renamed" }, 400, "name"],
      ["nothing", {}, 400, "body"],
      ["both every and cron", { every: 2000, cron: "* * * * *" }, 400, "every"],
      ["every < 1000", { every: 10 }, 400, "every"],
      ["a bad cron", { cron: "* * *" }, 400, "cron"],
      ["a bad time zone", { timezone: "Not/AZone" }, 400, "timezone"],
      ["a time zone for every", { every: 2000, timezone: "UTC" }, 400, "timezone"],
      ["paused not a boolean", { paused: "yes" }, 400, "paused"],
      ["an unknown task type", { task: { type: "nope" } }, 400, "task.type"],
      ["a missing pool", { task: { type: "echo", poolId: "gone" } }, 404, "task.poolId"],
    ];
    const before = (await api(url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule as ScheduleView;
    for (const [what, body, status, field] of patches) {
      const response = await api(url, "PATCH", `/api/v1/schedules/${id}`, { token, body });
      assert.equal(response.status, status, `PATCH ${what}: ${JSON.stringify(response.body)}`);
      const fields = ((response.body.error.details ?? []) as Array<{ field: string }>).map((d) => d.field);
      assert.ok(fields.includes(field), `PATCH ${what}: names ${field} (got ${fields.join(", ")})`);
    }
    assert.deepEqual((await api(url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule, before, "no PATCH changed anything");
    assert.equal((await api(url, "GET", "/api/v1/schedules?colour=red", { token })).status, 400);
    assert.equal((await api(url, "GET", "/api/v1/schedules/%00", { token })).status, 404);
    assert.equal(
      (await api(url, "POST", "/api/v1/schedules", { token, rawBody: "{nope", headers: { "content-type": "application/json" } })).status,
      400,
    );

    // Permissions: tasks:read reads, tasks:write changes.
    const reader = mintToken({ tenant, permissions: ["tasks:read"] });
    assert.equal((await api(url, "GET", `/api/v1/schedules/${id}`, { token: reader })).status, 200);
    assert.equal((await api(url, "PATCH", `/api/v1/schedules/${id}`, { token: reader, body: { paused: true } })).status, 403);
    assert.equal((await api(url, "DELETE", `/api/v1/schedules/${id}`, { token: reader })).status, 403);
    const writerOnly = mintToken({ tenant, permissions: ["pools:read"] });
    assert.equal((await api(url, "GET", "/api/v1/schedules", { token: writerOnly })).status, 403);

    assert.equal((await api(url, "DELETE", `/api/v1/schedules/${id}`, { token })).status, 204);
    assert.equal(await scheduleRows(tenant), 0);
  });

  it("keeps tenants apart: another tenant's schedule is a 404 to read, change or delete, and its events never arrive", async () => {
    const tokenA = mintToken({ tenant: freshTenant("sched-a") });
    const tokenB = mintToken({ tenant: freshTenant("sched-b") });
    const socketB = await connect(url, "tasks", { token: tokenB });
    const seenB = new EventRecorder(socketB);
    assert.equal((await subscribe(socketB, "schedules")).ok, true);
    const created = await api(url, "POST", "/api/v1/schedules", {
      token: tokenA,
      body: { name: "a's", task: { type: "echo" }, cron: "0 0 1 1 *" },
    });
    assert.equal(created.status, 201);
    const id = created.body.schedule.id as string;
    assert.equal((await api(url, "GET", `/api/v1/schedules/${id}`, { token: tokenB })).status, 404);
    assert.equal((await api(url, "PATCH", `/api/v1/schedules/${id}`, { token: tokenB, body: { paused: true } })).status, 404);
    assert.equal((await api(url, "DELETE", `/api/v1/schedules/${id}`, { token: tokenB })).status, 404);
    assert.deepEqual((await api(url, "GET", "/api/v1/schedules", { token: tokenB })).body.items, []);
    const still = await api(url, "GET", `/api/v1/schedules/${id}`, { token: tokenA });
    assert.equal(still.body.schedule.paused, false, "B's PATCH changed nothing");
    assert.equal((await api(url, "DELETE", `/api/v1/schedules/${id}`, { token: tokenA })).status, 204);
    await sleep(300);
    assert.deepEqual(seenB.events, []);
  });

  describe("firing on two nodes", function () {
    this.timeout(120_000);
    const prefix = isolatedPrefix("sched");
    // A cluster of its own, Redis prefix and database: exactly these two nodes take the due times, and no other
    // node's reconciliation puts this cluster's schedules on its own queue.
    const database = Object.assign(new URL(TEST_DATABASE_URL), { pathname: `${new URL(TEST_DATABASE_URL).pathname}_sched` }).toString();
    const env = { ...isolatedNodeEnv(prefix), DATABASE_URL: database };
    let nodes: ServerProcess[] = [];
    before(async () => {
      await setupDatabase(database, { generate: false });
      nodes = await Promise.all(["sched-a", "sched-b"].map((id) => startServer({ NODE_ID: id, ...env })));
    });
    after(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      await dropDatabase(database);
    });

    async function taskCount(token: string, scheduleId: string): Promise<number> {
      const page = await api(nodes[0]!.url, "GET", `/api/v1/tasks?scheduleId=${scheduleId}&limit=200`, { token });
      assert.equal(page.status, 200, JSON.stringify(page.body));
      return (page.body.items as unknown[]).length;
    }

    it("makes exactly one task per due time, every 1000 ms, carrying scheduleId; pause stops it, resume restarts it, PATCH retimes it, delete ends it", async () => {
      const tenant = freshTenant("sched-fire");
      const token = mintToken({ tenant });
      const [a, b] = nodes as [ServerProcess, ServerProcess];
      const socket = await connect(b.url, "tasks", { token });
      const seen = new EventRecorder(socket);
      assert.equal((await subscribe(socket, "tasks")).ok, true);

      const created = await api(a.url, "POST", "/api/v1/schedules", {
        token,
        body: { name: "tick", task: { type: "echo", payload: { tick: true } }, every: 1000 },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const schedule = created.body.schedule as ScheduleView;
      const start = Date.parse(schedule.nextRunAt!);
      assert.ok(Math.abs(start - (Date.now() + 1000)) < 1500, "the first due time is one interval on");
      await sleep(5500);

      const due = await dueTimes(schedule.id, database);
      assert.ok(due.length >= 4 && due.length <= 6, `about 5 due times in 5.5 s, got ${due.length}`);
      assert.equal(new Set(due).size, due.length, "each due time made one task");
      due.forEach((time, i) => assert.equal(time, start + i * 1000, `due time ${i} is the first plus ${i} intervals: no gap, none twice`));
      const tasks = (await api(a.url, "GET", `/api/v1/tasks?scheduleId=${schedule.id}`, { token })).body.items as Array<{
        scheduleId: string;
        type: string;
        payload: unknown;
      }>;
      assert.equal(tasks.length, due.length);
      for (const task of tasks) {
        assert.equal(task.scheduleId, schedule.id);
        assert.deepEqual(task.payload, { tick: true });
      }
      const createdEvent = seen.of("task.created")[0] as Envelope<{ task: { scheduleId: string } }> | undefined;
      assert.equal(createdEvent?.data.task.scheduleId, schedule.id, "task events carry scheduleId");

      // Pause: nothing new (one due time already being handled may still land).
      const paused = await api(b.url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { paused: true } });
      assert.equal(paused.status, 200);
      assert.equal(await schedulerNext(prefix, tenant, schedule.id), null, "no scheduler while paused");
      await sleep(500);
      const atPause = await taskCount(token, schedule.id);
      await sleep(2500);
      assert.equal(await taskCount(token, schedule.id), atPause, "no task while paused");

      // Resume: due times come again, from one interval after the resume.
      const resumed = await api(a.url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { paused: false } });
      assert.equal(resumed.status, 200);
      assert.ok(resumed.body.schedule.nextRunAt);
      await sleep(2500);
      const afterResume = await taskCount(token, schedule.id);
      assert.ok(afterResume >= atPause + 1 && afterResume <= atPause + 3, `resumed: ${atPause} → ${afterResume}`);

      // A new template: the due times stay, and the tasks after it carry it.
      const nextBefore = await schedulerNext(prefix, tenant, schedule.id);
      const retemplated = await api(b.url, "PATCH", `/api/v1/schedules/${schedule.id}`, {
        token,
        body: { task: { type: "echo", payload: { tick: 2 } } },
      });
      assert.equal(retemplated.status, 200, JSON.stringify(retemplated.body));
      assert.deepEqual(retemplated.body.schedule.task.payload, { tick: 2 });
      const nextAfter = await schedulerNext(prefix, tenant, schedule.id);
      assert.ok(
        nextBefore !== null && nextAfter !== null && (nextAfter - nextBefore) % 1000 === 0,
        `same phase: ${nextBefore} → ${nextAfter}`,
      );
      const changedAt = Date.now();
      await sleep(2200);
      const since = (
        await api(a.url, "GET", `/api/v1/tasks?scheduleId=${schedule.id}&createdAfter=${new Date(changedAt + 300).toISOString()}`, {
          token,
        })
      ).body.items as Array<{ payload: unknown }>;
      assert.ok(since.length >= 1, "tasks after the new template");
      for (const task of since) assert.deepEqual(task.payload, { tick: 2 });

      // Retime to every 2000 ms: the due times after it are 2 s apart.
      const retimed = await api(b.url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { every: 2000 } });
      assert.equal(retimed.status, 200);
      assert.deepEqual(retimed.body.schedule.every, 2000);
      const retimedAt = Date.parse(retimed.body.schedule.nextRunAt as string);
      assert.equal(await schedulerNext(prefix, tenant, schedule.id), retimedAt, "the scheduler holds the announced due time");
      await sleep(4700);
      const later = (await dueTimes(schedule.id, database)).filter((time) => time >= retimedAt);
      assert.ok(later.length >= 2 && later.length <= 3, `every 2 s: ${later.length}`);
      later.forEach((time, i) => assert.equal(time, retimedAt + i * 2000));

      // Delete: the scheduler goes, and no task follows.
      assert.equal((await api(a.url, "DELETE", `/api/v1/schedules/${schedule.id}`, { token })).status, 204);
      assert.equal(await schedulerNext(prefix, tenant, schedule.id), null);
      await sleep(500);
      const atDelete = await taskCount(token, schedule.id);
      await sleep(2500);
      assert.equal(await taskCount(token, schedule.id), atDelete, "no task after delete");
      assert.equal(await scheduleRows(tenant, database), 0);

      // The nodes counted each due time they turned into a task, and its lateness (this cluster's only schedule so far).
      const scrapes = await Promise.all(nodes.map((node) => scrape(node.url)));
      const made = (await dueTimes(schedule.id, database)).length;
      assert.equal(total(scrapes, "switchyard_schedule_due_total", { outcome: "created" }), made);
      assert.equal(total(scrapes, "switchyard_schedule_lateness_seconds_count"), made);
      assert.ok(
        scrapes.every((samples) => samples.some((s) => s.name === "switchyard_schedule_due_total" && s.labels.outcome === "skipped")),
      );
    });

    it("a node killed -9 while due times fire: every due time still makes exactly one task, none lost", async function () {
      this.timeout(150_000);
      const tenant = freshTenant("sched-kill");
      const token = mintToken({ tenant });
      const created = await api(nodes[1]!.url, "POST", "/api/v1/schedules", {
        token,
        body: { name: "through-a-crash", task: { type: "echo" }, every: 1000 },
      });
      assert.equal(created.status, 201);
      const schedules = [created.body.schedule as ScheduleView];
      // More schedules, so that due times are being handled on both nodes when one dies.
      for (let i = 0; i < 19; i++) {
        const more = await api(nodes[1]!.url, "POST", "/api/v1/schedules", {
          token,
          body: { name: `crash-${i}`, task: { type: "echo" }, every: 1000 },
        });
        assert.equal(more.status, 201);
        schedules.push(more.body.schedule as ScheduleView);
      }
      await sleep(3000 + Math.random() * 1000);
      await nodes[0]!.kill();
      await sleep(4000);
      const killedAt = Date.now();
      for (const schedule of schedules) {
        assert.equal(
          (await api(nodes[1]!.url, "PATCH", `/api/v1/schedules/${schedule.id}`, { token, body: { paused: true } })).status,
          200,
        );
      }
      // A due time whose job the dead node held comes back once its lock expires (10 s), on the live node.
      const complete = async (): Promise<boolean> => {
        for (const schedule of schedules) {
          const due = await dueTimes(schedule.id, database);
          const first = Date.parse(schedule.nextRunAt!);
          if (due.length === 0 || due[0] !== first || due.some((time, i) => time !== first + i * 1000)) return false;
        }
        return true;
      };
      const deadline = Date.now() + 60_000;
      while (!(await complete()) && Date.now() < deadline) await sleep(1000);
      for (const schedule of schedules) {
        const due = await dueTimes(schedule.id, database);
        const first = Date.parse(schedule.nextRunAt!);
        assert.ok(due.length >= 7, `${schedule.name}: ${due.length} due times`);
        assert.equal(new Set(due).size, due.length, `${schedule.name}: one task per due time`);
        due.forEach((time, i) => assert.equal(time, first + i * 1000, `${schedule.name}: due time ${i} missing or moved`));
        assert.ok(due.at(-1)! <= killedAt + 1000, `${schedule.name}: nothing after the pause`);
      }
      for (const schedule of schedules)
        assert.equal((await api(nodes[1]!.url, "DELETE", `/api/v1/schedules/${schedule.id}`, { token })).status, 204);
      // The next tests want two nodes again.
      nodes[0] = await startServer({ NODE_ID: "sched-a2", ...env });
    });

    it("concurrent PATCHes of one schedule leave its job scheduler as the last one committed left the row", async () => {
      const tenant = freshTenant("sched-race");
      const token = mintToken({ tenant });
      const created = await api(nodes[0]!.url, "POST", "/api/v1/schedules", {
        token,
        body: { name: "raced", task: { type: "echo" }, every: 600_000 },
      });
      assert.equal(created.status, 201);
      const id = created.body.schedule.id as string;
      const redis = new Redis(TEST_REDIS_URL);
      try {
        for (let round = 0; round < 3; round++) {
          const answers = await Promise.all(
            Array.from({ length: 12 }, (_, i) =>
              api(nodes[i % 2]!.url, "PATCH", `/api/v1/schedules/${id}`, {
                token,
                body: i % 3 === 0 ? { cron: `${i} 4 * * *`, timezone: "Asia/Tokyo" } : { every: 600_000 + i * 1000 },
              }),
            ),
          );
          for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
          const row = (await api(nodes[0]!.url, "GET", `/api/v1/schedules/${id}`, { token })).body.schedule as ScheduleView;
          const [every, pattern, tz] = await redis.hmget(`${prefix}:bull:schedules:repeat:${tenant}.${id}`, "every", "pattern", "tz");
          assert.deepEqual(
            { every: every === null ? null : Number(every), cron: pattern, timezone: tz },
            { every: row.every, cron: row.cron, timezone: row.timezone },
            `round ${round}`,
          );
        }
      } finally {
        redis.disconnect();
      }
      assert.equal((await api(nodes[0]!.url, "DELETE", `/api/v1/schedules/${id}`, { token })).status, 204);
    });

    it("reconciliation: a node that starts puts back a job scheduler Redis lost and a timing gone astray; a scheduler without its schedule is removed", async () => {
      const tenant = freshTenant("sched-heal");
      const token = mintToken({ tenant });
      const created = await api(nodes[0]!.url, "POST", "/api/v1/schedules", {
        token,
        body: { name: "heal", task: { type: "echo" }, every: 60_000 },
      });
      assert.equal(created.status, 201);
      const id = created.body.schedule.id as string;
      const redis = new Redis(TEST_REDIS_URL);
      try {
        // Redis loses the scheduler (its sorted-set entry and hash), and another's timing goes astray.
        const other = await api(nodes[0]!.url, "POST", "/api/v1/schedules", {
          token,
          body: { name: "astray", task: { type: "echo" }, every: 120_000 },
        });
        assert.equal(other.status, 201);
        const otherId = other.body.schedule.id as string;
        await redis.zrem(`${prefix}:bull:schedules:repeat`, `${tenant}.${id}`);
        await redis.del(`${prefix}:bull:schedules:repeat:${tenant}.${id}`);
        await redis.hset(`${prefix}:bull:schedules:repeat:${tenant}.${otherId}`, "every", "5000");
        assert.equal(await schedulerNext(prefix, tenant, id), null);
        // And a scheduler of a schedule that does not exist (its create rolled back after its Redis call, say).
        const orphan = `${tenant}.00000000-0000-4000-8000-000000000000`;
        const queue = new Queue("schedules", { connection: redis, prefix: `${prefix}:bull` });
        await queue.upsertJobScheduler(orphan, { every: 600_000, startDate: Date.now() + 600_000 }, { name: "due", data: {} });
        await queue.close();
        assert.notEqual(await redis.zscore(`${prefix}:bull:schedules:repeat`, orphan), null);
        // This cluster's database is its own: a reconciliation every second disturbs no other test.
        const third = await startServer({ NODE_ID: "sched-c", ...env, RECONCILE_INTERVAL_MS: "1000" });
        try {
          const deadline = Date.now() + 10_000;
          const healed = async (): Promise<boolean> =>
            (await schedulerNext(prefix, tenant, id)) !== null &&
            (await redis.hget(`${prefix}:bull:schedules:repeat:${tenant}.${otherId}`, "every")) === "120000";
          while (!(await healed()) && Date.now() < deadline) await sleep(100);
          assert.notEqual(await schedulerNext(prefix, tenant, id), null, "the starting node put the scheduler back");
          assert.equal(
            await redis.hget(`${prefix}:bull:schedules:repeat:${tenant}.${otherId}`, "every"),
            "120000",
            "and set the other's timing from its row",
          );
          assert.equal((await api(nodes[0]!.url, "DELETE", `/api/v1/schedules/${otherId}`, { token })).status, 204);
          // Seen without a row by two passes of one node (a create may be in flight during one), it is removed.
          const gone = Date.now() + 15_000;
          while ((await redis.zscore(`${prefix}:bull:schedules:repeat`, orphan)) !== null && Date.now() < gone) await sleep(200);
          assert.equal(await redis.zscore(`${prefix}:bull:schedules:repeat`, orphan), null, "the orphan scheduler was removed");
        } finally {
          await third.stop();
        }
      } finally {
        redis.disconnect();
      }
      assert.equal((await api(nodes[0]!.url, "DELETE", `/api/v1/schedules/${id}`, { token })).status, 204);
    });
  });
});
