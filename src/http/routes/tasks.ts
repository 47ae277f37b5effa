import { Router } from "express";
import { requirePermission } from "../authenticate.js";
import { resourceId } from "./resource-id.js";
import type { TaskBulkActions } from "../../domains/tasks/bulk.js";
import type { TaskService } from "../../domains/tasks/service.js";

export function taskRoutes(tasks: TaskService, bulk: TaskBulkActions, maxResponseBytes: number): Router {
  const router = Router();
  router.param("id", resourceId("task"));
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    const { task } = await tasks.submit(principal, req.body, req.get("idempotency-key"));
    res.status(202).json({ task });
  });
  router.get("/", async (req, res) => {
    const principal = requirePermission(res, "tasks:read");
    res.json(await tasks.list(principal, req.query, maxResponseBytes));
  });
  // Before "/:id": "counts" and "bulk" are not task ids.
  router.post("/bulk", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    res.status(202).json(await bulk.run(principal, req.body));
  });
  router.get("/counts", async (req, res) => {
    const principal = requirePermission(res, "tasks:read");
    res.json(await tasks.counts(principal, req.query));
  });
  router.get("/:id", async (req, res) => {
    const principal = requirePermission(res, "tasks:read");
    res.json(await tasks.getWithHead(principal, req.params.id));
  });
  router.post("/:id/cancel", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    res.json({ task: await tasks.cancel(principal, req.params.id) });
  });
  router.post("/:id/retry", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    res.status(202).json({ task: await tasks.retry(principal, req.params.id) });
  });
  return router;
}
