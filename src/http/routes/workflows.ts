import { Router } from "express";
import { requirePermission } from "../authenticate.js";
import { resourceId } from "./resource-id.js";
import type { WorkflowService } from "../../domains/workflows/service.js";

export function workflowRoutes(workflows: WorkflowService): Router {
  const router = Router();
  router.param("id", resourceId("workflow"));
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "workflows:write");
    res.status(202).json({ workflow: await workflows.create(principal, req.body) });
  });
  router.get("/", async (req, res) => {
    const principal = requirePermission(res, "workflows:read");
    res.json(await workflows.list(principal, req.query));
  });
  router.get("/:id", async (req, res) => {
    const principal = requirePermission(res, "workflows:read");
    res.json({ workflow: await workflows.get(principal, req.params.id) });
  });
  router.post("/:id/cancel", async (req, res) => {
    const principal = requirePermission(res, "workflows:write");
    res.json({ workflow: await workflows.cancel(principal, req.params.id) });
  });
  return router;
}
