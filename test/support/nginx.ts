/**
 * Debian's real nginx running the shipped `deploy/nginx/switchyard.conf`, unprivileged-style: its own prefix
 * dir, a free port, in the foreground as a child of the test.
 *
 *   const lb = await startNginx(["127.0.0.1:41001", "127.0.0.1:41002"]);   lb.url; lb.logs(); await lb.stop();
 *
 * The shipped file is used as it is, except for the two parts it marks for the operator: the node list and
 * the `listen` line. The test wraps it in a minimal nginx.conf whose temp paths stay inside the prefix dir.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./private-services.js";

export const NGINX_BINARY = "/usr/sbin/nginx";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SHIPPED_CONFIG = path.join(repoRoot, "deploy/nginx/switchyard.conf");

const NODES_BEGIN = /^[ \t]*# --- switchyard nodes: begin.*$/m;
const NODES_END = /^[ \t]*# --- switchyard nodes: end.*$/m;
const SERVER_LINE = /^[ \t]*server[ \t]+\S+([^;\n]*);/m;
const LISTEN_LINE = /^([ \t]*)listen[ \t]+[^;\n]+;/gm;

/** Why the nginx tests cannot run here, or undefined if they can. */
export function nginxUnavailable(): string | undefined {
  return existsSync(NGINX_BINARY) ? undefined : `${NGINX_BINARY} is not installed (apt-get install nginx; .ci/run does it as root)`;
}

/**
 * The shipped site with its marked parts filled in: one `server` line per upstream (keeping the parameters the
 * file gives its example nodes, such as max_fails) and `listen` on the given address. Throws if the markers
 * are gone, so the test cannot silently run some other configuration.
 */
export function siteConfig(shipped: string, upstreams: string[], listen: string): string {
  const begin = NODES_BEGIN.exec(shipped);
  const end = NODES_END.exec(shipped);
  if (!begin || !end || end.index < begin.index)
    throw new Error("switchyard.conf: the '# --- switchyard nodes: begin/end' markers are missing");
  const listed = shipped.slice(begin.index + begin[0].length, end.index);
  const example = SERVER_LINE.exec(listed);
  if (!example) throw new Error("switchyard.conf: no `server host:port ...;` line between the node markers");
  const indent = /^[ \t]*/.exec(begin[0])![0];
  const servers = upstreams.map((address) => `${indent}server ${address}${example[1]};`).join("\n");
  const withNodes = `${shipped.slice(0, begin.index + begin[0].length)}\n${servers}\n${shipped.slice(end.index)}`;
  const listens = withNodes.match(LISTEN_LINE) ?? [];
  if (listens.length !== 1) throw new Error(`switchyard.conf: expected one listen line, found ${listens.length}`);
  return withNodes.replace(LISTEN_LINE, (_line, lead: string) => `${lead}listen ${listen};`);
}

/** A complete nginx.conf around the site file: everything nginx writes stays in `dir`. */
function mainConfig(dir: string, site: string): string {
  const temp = (name: string): string => `${name}_temp_path ${path.join(dir, "tmp", name)};`;
  return [
    "worker_processes 1;",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((name) => `  ${temp(name)}`),
    `  include ${site};`,
    "}",
    "",
  ].join("\n");
}

export interface NginxProcess {
  url: string;
  port: number;
  dir: string;
  /** nginx's error log (its stderr): upstream failures show up here. */
  logs(): string;
  /** Fast shutdown (SIGTERM: open connections are closed), then the prefix dir is removed. */
  stop(): Promise<void>;
}

const registry = globalThis as typeof globalThis & { __switchyardNginx?: Set<NginxProcess> };
const running = (registry.__switchyardNginx ??= new Set<NginxProcess>());

/** Stops every nginx a test started and did not stop (a failed test must not leave one behind). */
export async function stopAllNginx(): Promise<void> {
  await Promise.allSettled([...running].map((n) => n.stop()));
}

async function prepareDir(site: string): Promise<{ dir: string; conf: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "switchyard-nginx-"));
  // Run as root, nginx's workers drop to an unprivileged user: they must be able to reach the temp paths.
  await chmod(dir, 0o755);
  await mkdir(path.join(dir, "tmp"));
  await mkdir(path.join(dir, "logs")); // nginx opens <prefix>/logs/error.log before it reads the -g error_log
  await writeFile(path.join(dir, "switchyard.conf"), site);
  const conf = path.join(dir, "nginx.conf");
  await writeFile(conf, mainConfig(dir, path.join(dir, "switchyard.conf")));
  return { dir, conf };
}

function globals(dir: string): string {
  return `daemon off; pid ${path.join(dir, "nginx.pid")}; error_log stderr;`;
}

/** `nginx -t` on the given site file (as shipped, or filled in): resolves with nginx's output, rejects on failure. */
export async function checkConfig(site: string): Promise<string> {
  const { dir, conf } = await prepareDir(site);
  try {
    return await new Promise<string>((resolve, reject) => {
      execFile(NGINX_BINARY, ["-t", "-p", dir, "-c", conf, "-g", globals(dir)], (error, stdout, stderr) => {
        if (error) reject(new Error(`nginx -t failed:\n${stderr}${stdout}`));
        else resolve(`${stderr}${stdout}`);
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts nginx with the shipped site in front of `upstreams` (host:port) and waits until it accepts connections. */
export async function startNginx(upstreams: string[]): Promise<NginxProcess> {
  const port = await freePort();
  const site = siteConfig(await readFile(SHIPPED_CONFIG, "utf8"), upstreams, `127.0.0.1:${port}`);
  const { dir, conf } = await prepareDir(site);
  const child: ChildProcess = spawn(NGINX_BINARY, ["-p", dir, "-c", conf, "-g", globals(dir)], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stopped: Promise<void> | undefined;
  const nginx: NginxProcess = {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    logs: () => output,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        await exited;
        running.delete(nginx);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  running.add(nginx);
  const deadline = Date.now() + 15_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await nginx.stop();
      throw new Error(`nginx did not start on port ${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return nginx;
}
