import cors from "cors";
import express, { type Express, type Router } from "express";
import type { TokenVerifier } from "../auth/verify.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { authenticate } from "./authenticate.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { healthRouter, type HealthDeps } from "./health.js";

export interface HttpAppDeps {
  health: HealthDeps;
  verifyToken: TokenVerifier;
  logger: Logger;
  metrics: Metrics;
  maxPayloadBytes: number;
  corsOrigins: string[] | undefined;
  /** Domain routers mounted under /api/v1/<path>, all behind authentication (several routers may share a path). */
  api: Record<string, Router | Router[]>;
}

export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.use((req, res, next) => {
    res.on("finish", () => {
      // The matched route pattern, not the raw path, keeps label cardinality bounded.
      const route = (req.route as { path?: string } | undefined)?.path;
      deps.metrics.httpRequests.inc({
        method: req.method,
        route: route ? `${req.baseUrl}${route}` : "unmatched",
        status: String(res.statusCode),
      });
    });
    next();
  });
  // Without CORS_ORIGINS no CORS headers are sent, so browsers allow same-origin calls only.
  if (deps.corsOrigins) app.use(cors({ origin: deps.corsOrigins.includes("*") ? true : deps.corsOrigins }));
  app.use(healthRouter(deps.health));
  const api = express.Router();
  api.use(express.json({ limit: deps.maxPayloadBytes, strict: false, type: ["application/json", "application/*+json"] }));
  api.use(authenticate(deps.verifyToken));
  for (const [path, routers] of Object.entries(deps.api)) api.use(`/${path}`, ...[routers].flat());
  app.use("/api/v1", api);
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger, deps.metrics));
  return app;
}
