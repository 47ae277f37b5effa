import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import express, { Router, type Response } from "express";

/**
 * Where `npm run build` puts the console: the repository's dist/console/. The same path from src/http/ (tsx) and
 * from dist/http/ (the compiled server), two levels up either way.
 */
export const DEFAULT_CONSOLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "dist", "console");

/**
 * The console's pages load nothing but the node's own files and talk only to the node (REST and Socket.IO,
 * which needs ws:/wss: spelled out for older browsers). No inline script or style is allowed, no framing, no
 * referrer: the page holds a token, so it gives an injected script as little as possible to work with.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  // 'self' covers the node's own ws:/wss: (CSP level 3): the console talks to its own node and nowhere else.
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function secure(res: Response): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("X-Frame-Options", "DENY");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
  res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
  res.setHeader("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
}

const NOT_BUILT_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard console not built</title></head>
<body><h1>The console has not been built</h1>
<p>This node serves the console from <code>dist/console/</code>, which is missing. Run <code>npm run build</code> (or <code>npm start</code>, which builds it), then reload.</p>
</body></html>
`;

/**
 * `/` → `/dashboard/`, and the console's files under `/dashboard/`. Its pages are revalidated on every load
 * (ETag), so a rebuilt console is picked up at once. Without a build, 503 with what to run.
 */
export function consoleRoutes(dir: string = DEFAULT_CONSOLE_DIR): Router {
  const router = Router();
  router.get("/", (_req, res) => res.redirect(302, "/dashboard/"));
  // The page's relative URLs (main.js, styles.css) need the trailing slash.
  router.get("/dashboard", (req, res, next) => {
    if (req.path !== "/dashboard") return next();
    const query = req.originalUrl.indexOf("?");
    res.redirect(302, `/dashboard/${query === -1 ? "" : req.originalUrl.slice(query)}`);
  });
  router.use("/dashboard", (_req, res, next) => {
    secure(res);
    next();
  });
  router.use(
    "/dashboard",
    express.static(dir, {
      index: "index.html",
      redirect: false,
      dotfiles: "ignore",
      setHeaders: (res) => res.setHeader("Cache-Control", "no-cache"),
    }),
  );
  router.use("/dashboard", (req, res, next) => {
    if (existsSync(path.join(dir, "index.html"))) return next(); // built: an unknown file is a plain 404
    res.status(503).setHeader("Retry-After", "30");
    if (req.accepts(["json", "html"]) === "html") res.type("html").send(NOT_BUILT_HTML);
    else res.json({ error: { code: "UNAVAILABLE", message: "the console has not been built: run npm run build" } });
  });
  return router;
}
