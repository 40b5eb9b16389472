// Drives Debian's firefox-esr for tests/clients/browsers.py: puppeteer-core over WebDriver BiDi (no browser download).
//
// Usage: node browser-bridge.mjs FIREFOX DOWNLOAD_DIR
// Reads one JSON command a line on stdin, {"op": ..., "args": [...]}, and answers each with one JSON line on stdout,
// {"value": ...} or {"error": "..."}. Console errors and page errors are collected and answered by "errors".
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const [executablePath, downloads] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath,
  headless: true,
  // Blob downloads go straight to DOWNLOAD_DIR, without a dialog.
  extraPrefsFirefox: {
    "browser.download.dir": downloads,
    "browser.download.folderList": 2,
    "browser.download.useDownloadDir": true,
    "browser.download.always_ask_before_handling_new_types": false,
  },
});

let context = null;
let page = null;
let errors = [];

/** A new browser context (no cookies) with one page of the given viewport. */
async function newPage(width, height) {
  if (context !== null) {
    await context.close();
  }
  context = await browser.createBrowserContext();
  page = await context.newPage();
  await page.setViewport({ width, height });
  errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") {
      errors.push({ text: message.text(), url: message.location()?.url ?? "" });
    }
  });
  page.on("pageerror", (error) => errors.push({ text: `page error: ${error.message}`, url: "" }));
  return null;
}

/** Clicks `selector` and answers the bytes (base64) of the one file the browser saved. */
async function download(selector, timeoutMs) {
  for (const name of fs.readdirSync(downloads)) {
    fs.rmSync(path.join(downloads, name), { force: true });
  }
  await page.click(selector);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Firefox writes NAME.part and renames it to NAME when the download is complete.
    const names = fs.readdirSync(downloads);
    const done = names.filter((name) => !name.endsWith(".part"));
    if (done.length === 1 && !names.some((name) => name.endsWith(".part"))) {
      const bytes = fs.readFileSync(path.join(downloads, done[0]));
      if (fs.statSync(path.join(downloads, done[0])).size === bytes.length) {
        return bytes.toString("base64");
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`no download finished within ${timeoutMs} ms (the folder holds ${JSON.stringify(names)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const operations = {
  newPage,
  async goto(url) {
    const response = await page.goto(url);
    return { status: response.status(), headers: response.headers(), url: page.url() };
  },
  click: (selector) => page.click(selector).then(() => null),
  focus: (selector) => page.focus(selector).then(() => null),
  press: (key) => page.keyboard.press(key).then(() => null),
  fill: (selector, value) => page.locator(selector).fill(value).then(() => null),
  select: (selector, value) => page.select(selector, value).then(() => null),
  async upload(selector, file) {
    const input = await page.$(selector);
    await input.uploadFile(file);
    return null;
  },
  // `source` is a function's source; it is called with `arg` in the page and may return a promise.
  evaluate: (source, arg) => page.evaluate(`(${source})(${JSON.stringify(arg)})`),
  async waitFor(source, arg, timeoutMs) {
    await page.waitForFunction(`(${source})(${JSON.stringify(arg)})`, { timeout: timeoutMs, polling: 50 });
    return null;
  },
  download,
  setViewport: (width, height) => page.setViewport({ width, height }).then(() => null),
  async screenshot(file, fullPage, clip) {
    await page.screenshot({ path: file, fullPage, clip: clip ?? undefined });
    return null;
  },
  errors: async () => errors,
  version: () => browser.version(),
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { op, args } = JSON.parse(line);
  let answer;
  try {
    answer = { value: (await operations[op](...args)) ?? null };
  } catch (error) {
    answer = { error: `${op}: ${error.message}` };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
