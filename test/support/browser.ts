/**
 * A real browser for the console tests: Debian's chromium, driven by playwright-core (which never downloads a
 * browser of its own). Each ConsolePage is a fresh context (its own sessionStorage) that records every request
 * the page makes, so a test can prove that nothing left the node.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { buildConsole } from "../../scripts/build-console.js";
import { skipBecause } from "./skip.js";

export const CHROMIUM = "/usr/bin/chromium";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = path.join(repoRoot, "test", "artifacts");

export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
}

/**
 * For a suite's `before`: skips the suite (saying why) without Chromium, else builds the console and launches
 * the browser.
 */
export async function consoleBrowserOrSkip(context: Mocha.Context): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) skipBecause(context, missing);
  const [browser] = await Promise.all([launchBrowser(), buildConsole()]);
  return browser;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/**
 * In-page JavaScript for ConsolePage.record: a string, because tsx compiles functions in this file with helpers
 * (`__name`) that do not exist in the page.
 */
const RECORDER = `({ name, selector, idAttribute, valueAttribute }) => {
  const log = ((window.__recorded ??= {})[name] = []);
  const last = new Map();
  function scan() {
    for (const element of document.querySelectorAll(selector)) {
      const id = idAttribute ? (element.getAttribute(idAttribute) ?? "") : "";
      const value = element.getAttribute(valueAttribute) ?? "";
      if (last.get(id) !== value) {
        last.set(id, value);
        log.push([id, value]);
      }
    }
  }
  new MutationObserver(scan).observe(document.body, { subtree: true, childList: true, attributes: true });
  scan();
}`;

export class ConsolePage {
  /** Every URL the page asked for: documents, scripts, fetches, WebSockets. */
  readonly requests: string[] = [];
  /** Console errors and uncaught exceptions (a CSP violation shows up here). */
  readonly problems: string[] = [];
  private readonly expected: RegExp[] = [];

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    readonly baseUrl: string,
  ) {
    page.on("request", (request) => void this.requests.push(request.url()));
    page.on("websocket", (socket) => void this.requests.push(socket.url()));
    page.on("console", (message) => {
      if (message.type() === "error") this.problems.push(message.text());
    });
    page.on("pageerror", (error) => void this.problems.push(`${error.name}: ${error.message}`));
  }

  /** Opens `/dashboard/` (with `#token=` when a token is given) in a fresh context. */
  static async open(browser: Browser, baseUrl: string, token?: string, viewport = { width: 1360, height: 860 }): Promise<ConsolePage> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const console = new ConsolePage(context, page, baseUrl);
    await page.goto(`${baseUrl}/dashboard/${token ? `#token=${token}` : ""}`);
    return console;
  }

  /** Errors the browser logs that the test provokes (a refused token's 401, a stopped node's refused connections). */
  expect(problem: RegExp): void {
    this.expected.push(problem);
  }

  unexpectedProblems(): string[] {
    return this.problems.filter((p) => !this.expected.some((e) => e.test(p)));
  }

  /** Waits until the console says it is live (signed in, every room acknowledged). */
  async live(): Promise<void> {
    try {
      await this.page.locator('[data-connection="live"]').waitFor({ timeout: 60_000 });
    } catch (error) {
      // Say what the page shows instead: a state, or no indicator at all (still on the sign-in screen).
      const shown = await this.page
        .locator("[data-connection]")
        .getAttribute("data-connection", { timeout: 1000 })
        .catch(
          async () =>
            `no indicator: ${(
              await this.page
                .locator("#app")
                .innerText()
                .catch(() => "")
            ).slice(0, 300)}`,
        );
      throw new Error(`the console did not get live; it shows ${shown}; last requests: ${this.requests.slice(-6).join(" ")}`, {
        cause: error,
      });
    }
  }

  async view(name: "pools" | "tasks" | "workflows" | "events" | "activity" | "nodes"): Promise<void> {
    await this.page.locator(`a[data-view="${name}"]`).click();
    await this.page.locator(`[data-current-view="${name}"]`).waitFor();
  }

  /** Waits for an element with these data attributes, e.g. `{ "task-id": id, status: "completed" }`. */
  async element(attributes: Record<string, string>, timeout = 30_000): Promise<void> {
    const selector = Object.entries(attributes)
      .map(([name, value]) => `[data-${name}="${value}"]`)
      .join("");
    await this.page.locator(selector).first().waitFor({ timeout });
  }

  /**
   * Records, inside the page, every value `valueAttribute` takes on elements matching `selector` (keyed by
   * `idAttribute`), as the DOM changes: transitions too quick to poll for are kept.
   */
  async record(name: string, selector: string, idAttribute: string | undefined, valueAttribute: string): Promise<void> {
    await this.page.evaluate(`(${RECORDER})(${JSON.stringify({ name, selector, idAttribute: idAttribute ?? null, valueAttribute })})`);
  }

  /** The values recorded so far, for one id (or all, in order, as `id=value`). */
  async recorded(name: string, id?: string): Promise<string[]> {
    const log = await this.page.evaluate<Array<[string, string]>>(`window.__recorded?.[${JSON.stringify(name)}] ?? []`);
    return id === undefined ? log.map(([i, v]) => (i ? `${i}=${v}` : v)) : log.filter(([i]) => i === id).map(([, v]) => v);
  }

  /** The token the tab keeps (sessionStorage), if any. */
  storedToken(): Promise<string | null> {
    return this.page.evaluate<string | null>("sessionStorage.getItem('switchyard.token')");
  }

  /** The page's cookies as scripts see them. */
  cookie(): Promise<string> {
    return this.page.evaluate<string>("document.cookie");
  }

  async screenshot(name: string): Promise<string> {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `console-${name}.png`);
    // The app's own box: as tall as what it shows (the sign-in screen fills the window by itself).
    await this.page.locator("#app").screenshot({ path: file });
    return file;
  }

  /** Requests that went anywhere but the node's own origin (http and ws alike). */
  foreignRequests(): string[] {
    const origin = new URL(this.baseUrl);
    return this.requests.filter((url) => {
      const target = new URL(url);
      return target.host !== origin.host || !["http:", "ws:"].includes(target.protocol);
    });
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
  }
}

/**
 * The console pages a test opens: each test ends by checking that nothing they asked for left the node and that
 * no script error happened (CSP included), and `afterEach` closes them.
 */
export class OpenPages {
  private readonly pages: ConsolePage[] = [];

  constructor(private readonly browser: () => Browser) {}

  async open(url: string, token?: string): Promise<ConsolePage> {
    const page = await ConsolePage.open(this.browser(), url, token);
    this.pages.push(page);
    return page;
  }

  assertStayedClean(): void {
    for (const page of this.pages) {
      assert.deepEqual(page.foreignRequests(), [], "every request goes to the node");
      assert.deepEqual(page.unexpectedProblems(), [], "no errors in the page");
    }
  }

  async closeAll(): Promise<void> {
    for (const page of this.pages.splice(0)) await page.close();
  }
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: string[] }>;
}

/**
 * axe-core in the page: the serious and critical violations of what it shows now. The console's CSP allows no
 * inline script, so page.addScriptTag (an inline <script>) is refused there: axe is evaluated through the
 * DevTools protocol instead, which no page policy applies to, and nothing about the page is loosened for it.
 */
export async function seriousViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate("typeof window.axe !== 'undefined'")))
    await page.evaluate(readFileSync(path.join(repoRoot, "node_modules", "axe-core", "axe.min.js"), "utf8"));
  const violations = await page.evaluate<AxeViolation[]>("axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations)");
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}× e.g. ${v.nodes
          .slice(0, 3)
          .map((n) => n.target.join(" "))
          .join(" | ")})`,
    );
}
