import { Router } from "express";
import { requirePermission } from "../authenticate.js";
import { resourceId } from "./resource-id.js";
import type { WorkflowService } from "../../domains/workflows/service.js";
import type { EventLogReader } from "../../events/event-log-reader.js";
import { roomNames } from "../../protocol/rooms.js";
import { readWithHead } from "./resource-head.js";

export function workflowRoutes(workflows: WorkflowService, log: EventLogReader, maxResponseBytes: number): Router {
  const router = Router();
  router.param("id", resourceId("workflow"));
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "workflows:write");
    res.status(202).json({ workflow: await workflows.create(principal, req.body) });
  });
  router.get("/", async (req, res) => {
    const principal = requirePermission(res, "workflows:read");
    res.json(await workflows.list(principal, req.query, maxResponseBytes));
  });
  router.get("/:id", async (req, res) => {
    const principal = requirePermission(res, "workflows:read");
    const where = { tenantId: principal.tenantId, namespace: "workflows" as const, room: roomNames.workflow(req.params.id) };
    const { value: workflow, head } = await readWithHead(log, where, () => workflows.get(principal, req.params.id));
    res.json({ workflow, head });
  });
  router.post("/:id/cancel", async (req, res) => {
    const principal = requirePermission(res, "workflows:write");
    res.json({ workflow: await workflows.cancel(principal, req.params.id) });
  });
  return router;
}
