import { Router } from "express";
import type { NodeReadings } from "../../realtime/node-readings.js";
import type { NodesResponse } from "../../protocol/nodes.js";
import { requirePermission } from "../authenticate.js";

/** `GET /api/v1/nodes` (`admin`): the live nodes, each with the tenant's own sockets and events/s on it. */
export function nodeRoutes(readings: NodeReadings): Router {
  const router = Router();
  router.get("/", async (_req, res) => {
    const principal = requirePermission(res, "admin");
    res.json({ items: await readings.read(principal.tenantId) } satisfies NodesResponse);
  });
  return router;
}
