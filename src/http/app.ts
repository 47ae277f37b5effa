import cors from "cors";
import express, { type Express, type Router } from "express";
import { pinoHttp } from "pino-http";
import type { TokenVerifier } from "../auth/verify.js";
import type { FailureReporter } from "../dependencies/status.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { authenticate } from "./authenticate.js";
import { tenantFairShare } from "./fair-share.js";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";
import type { TenantRequestRate } from "../limits/tenant-request-rate.js";
import { tenantRateLimit } from "./rate-limit.js";
import { consoleRoutes } from "./console.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import { healthRouter, type HealthDeps } from "./health.js";
import { requestIdFrom, runInRequest, type RequestContext } from "../observability/request-context.js";
import { jsonBody } from "./json-body.js";

export interface HttpAppDeps {
  health: HealthDeps;
  verifyToken: TokenVerifier;
  logger: Logger;
  metrics: Metrics;
  failures: FailureReporter;
  maxPayloadBytes: number;
  corsOrigins: string[] | undefined;
  /** REST_RATE_PER_TENANT, shared by all nodes. */
  requestRate: TenantRequestRate;
  /** Requests and task reports running at once, shared fairly among tenants (TENANT_WORK_CONCURRENCY). */
  fairShare: TenantFairShare;
  /** Domain routers mounted under /api/v1/<path>, all behind authentication (several routers may share a path). */
  api: Record<string, Router | Router[]>;
  /** The built console (`npm run build` → dist/console/), served at /dashboard/. */
  consoleDir?: string;
}

export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  app.use((req, res, next) => {
    // No response is ever to be read as another type than the one it says (JSON as HTML, text as script).
    res.setHeader("X-Content-Type-Options", "nosniff");
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
  // Every response carries X-Request-Id (the caller's when it sent a sane one) and the access line names it.
  // Successful requests are logged at debug (a busy node answers thousands a second), refusals at info,
  // failures at error. A 503 is a dependency that is down (or a node shutting down), logged once where it is
  // found (DependencyStatus), not a fault of this request: a warning. pino-http stands in an Error of its own
  // ("failed with status code …", with its own stack) for a failure it only knows by its status: that stack says
  // nothing, and the real error, when there is one, is logged by the error middleware.
  app.use(
    pinoHttp({
      logger: deps.logger,
      genReqId: (req, res) => {
        const id = requestIdFrom(req.headers["x-request-id"]);
        res.setHeader("X-Request-Id", id);
        return id;
      },
      customLogLevel: (_req, res, error) =>
        error ? "error" : res.statusCode === 503 ? "warn" : res.statusCode >= 500 ? "error" : res.statusCode >= 400 ? "info" : "debug",
      customErrorMessage: (_req, res, error) => (isStatusStandIn(error, res.statusCode) ? "request completed" : "request errored"),
      customErrorObject: (_req, res, error, fields: Record<string, unknown>) => {
        if (!isStatusStandIn(error, res.statusCode)) return fields;
        const { err: _standIn, ...rest } = fields;
        return rest;
      },
      customAttributeKeys: { reqId: "reqId" },
      // The request id, method, URL and status are enough to follow a request; headers would log tokens.
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ method: req.method, url: req.url }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      quietReqLogger: true,
    }),
  );
  // Without CORS_ORIGINS no CORS headers are sent, so browsers allow same-origin calls only.
  if (deps.corsOrigins) app.use(cors({ origin: deps.corsOrigins.includes("*") ? true : deps.corsOrigins }));
  app.use(healthRouter(deps.health));
  app.use(consoleRoutes(deps.consoleDir));
  const api = express.Router();
  // Every request runs in its own context (reqId, then tenant and subject), so its log lines carry them.
  api.use((req, res, next) => {
    const context: RequestContext = { reqId: typeof req.id === "object" ? JSON.stringify(req.id) : String(req.id) };
    res.locals.requestContext = context;
    runInRequest(context, next);
  });
  api.use(authenticate(deps.verifyToken));
  // Before the body is read: a request over its tenant's rate costs no parsing.
  api.use(tenantRateLimit(deps.requestRate, deps.metrics));
  // Then its place in the tenant's share of the node: the database behind the routes is never one tenant's.
  api.use(tenantFairShare(deps.fairShare));
  api.use(jsonBody(deps.maxPayloadBytes));
  // body-parser resumes from the request stream's callbacks, outside the context: enter it again.
  api.use((_req, res, next) => (res.locals.requestContext ? runInRequest(res.locals.requestContext, next) : next()));
  for (const [path, routers] of Object.entries(deps.api)) api.use(`/${path}`, ...[routers].flat());
  app.use("/api/v1", api);
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger, deps.metrics, deps.failures));
  return app;
}

/** pino-http's own Error for a response that failed by its status alone (no error was thrown or emitted). */
function isStatusStandIn(error: Error, statusCode: number): boolean {
  return error.message === `failed with status code ${statusCode}`;
}
