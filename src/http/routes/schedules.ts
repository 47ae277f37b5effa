import { Router } from "express";
import { requirePermission } from "../authenticate.js";
import { resourceId } from "./resource-id.js";
import type { ScheduleService } from "../../domains/schedules/service.js";

/** `/api/v1/schedules`: `tasks:write` to change a schedule, `tasks:read` to read one. */
export function scheduleRoutes(schedules: ScheduleService, maxResponseBytes: number): Router {
  const router = Router();
  router.param("id", resourceId("schedule"));
  router.post("/", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    res.status(201).json({ schedule: await schedules.create(principal, req.body) });
  });
  router.get("/", async (req, res) => {
    const principal = requirePermission(res, "tasks:read");
    res.json(await schedules.list(principal, req.query, maxResponseBytes));
  });
  router.get("/:id", async (req, res) => {
    const principal = requirePermission(res, "tasks:read");
    res.json({ schedule: await schedules.get(principal, req.params.id) });
  });
  router.patch("/:id", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    res.json({ schedule: await schedules.update(principal, req.params.id, req.body) });
  });
  router.delete("/:id", async (req, res) => {
    const principal = requirePermission(res, "tasks:write");
    await schedules.delete(principal, req.params.id);
    res.status(204).end();
  });
  return router;
}
