import { Router } from "express";
import { principalOf, requirePermission } from "../authenticate.js";
import { resourceId } from "./resource-id.js";
import type { PoolService } from "../../domains/pools/service.js";
import type { EventLogReader } from "../../events/event-log-reader.js";
import { roomNames } from "../../protocol/rooms.js";
import { readWithHead } from "./resource-head.js";

export function poolRoutes(pools: PoolService, log: EventLogReader, maxResponseBytes: number): Router {
  const router = Router();
  router.param("id", resourceId("pool"));
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "pools:write");
    res.status(201).json({ pool: await pools.create(principal, req.body) });
  });
  router.get("/", async (req, res) => {
    const principal = requirePermission(res, "pools:read");
    res.json(await pools.list(principal, req.query, maxResponseBytes));
  });
  router.get("/:id", async (req, res) => {
    // A pool's own worker token reads its pool too: the agent on a worker host learns how many workers to run.
    const own = principalOf(res);
    const principal = own.permissions.has("pools:work") && own.poolId === req.params.id ? own : requirePermission(res, "pools:read");
    const where = { tenantId: principal.tenantId, namespace: "pools" as const, room: roomNames.pool(req.params.id) };
    const { value: pool, head } = await readWithHead(log, where, () => pools.get(principal, req.params.id));
    res.json({ pool, head });
  });
  router.patch("/:id", async (req, res) => {
    const principal = requirePermission(res, "pools:write");
    res.json({ pool: await pools.update(principal, req.params.id, req.body) });
  });
  for (const [action, paused] of [
    ["pause", true],
    ["resume", false],
  ] as const) {
    router.post(`/:id/${action}`, async (req, res) => {
      const principal = requirePermission(res, "pools:write");
      res.status(202).json({ pool: await pools.setPaused(principal, req.params.id, paused) });
    });
  }
  router.post("/:id/scale", async (req, res) => {
    const principal = requirePermission(res, "pools:write");
    res.status(202).json({ pool: await pools.scale(principal, req.params.id, req.body) });
  });
  return router;
}
