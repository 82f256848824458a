// A real browser for herald's dashboard tests (tests/it/dashboard_browser.rs): Debian's
// Chromium (/usr/bin/chromium, or CHROMIUM), driven by playwright-core, which never downloads a
// browser of its own.
//
// The test drives it one command at a time: one JSON object per line on stdin, one answer per
// line on stdout ({"ok":true,...} or {"error":"..."}), in order. Every answer carries "errors":
// the page's uncaught exceptions and console errors since the last answer, so a test sees a
// broken page. Confirm dialogs are accepted (the test clicked the button that asks).
//
// Commands:
//   {"cmd":"open","url":..}                 load the page; wait until a view rendered
//   {"cmd":"go","hash":"#/dead-letters"}    same-page navigation; wait for that view to render
//   {"cmd":"text","selector":..}            innerText of the first match (waits for it)
//   {"cmd":"texts","selector":..}           innerText of every match
//   {"cmd":"wait_text","selector":..,"text":..}  until the first match contains text
//   {"cmd":"click","selector":..}
//   {"cmd":"tab_to","selector":..,"max":n}  press Tab until that element has focus; answers the
//                                           number of presses (keyboard reachability)
//   {"cmd":"press","key":"Enter"}
//   {"cmd":"viewport","width":..,"height":..}
//   {"cmd":"screenshot","path":..,"full":bool}
//   {"cmd":"timing"}                        ms from navigation start to the first rendered view
//   {"cmd":"widths"}                        the page's scroll width and the viewport's width
// Exits when stdin closes.
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const TIMEOUT = 30000;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(TIMEOUT);
  let errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
  const rendered = (view) => page.waitForFunction(
    (v) => document.documentElement.dataset.ready && (!v || document.documentElement.dataset.ready === v), view, { timeout: TIMEOUT });

  const commands = {
    async open(c) {
      await page.goto('about:blank'); // a fresh load even when only the #hash differs
      await page.goto(c.url);
      await rendered(c.view);
      return {};
    },
    async go(c) {
      await page.evaluate((hash) => { delete document.documentElement.dataset.ready; location.hash = hash; }, c.hash);
      await rendered(c.view);
      return {};
    },
    async text(c) { return { text: await page.locator(c.selector).first().innerText() }; },
    async texts(c) { return { texts: await page.locator(c.selector).allInnerTexts() }; },
    async wait_text(c) {
      await page.waitForFunction(([sel, t]) => {
        const el = document.querySelector(sel);
        return el && el.innerText.includes(t);
      }, [c.selector, c.text], { timeout: TIMEOUT });
      return { text: await page.locator(c.selector).first().innerText() };
    },
    async click(c) { await page.locator(c.selector).first().click(); return {}; },
    async tab_to(c) {
      for (let n = 1; n <= (c.max || 100); n++) {
        await page.keyboard.press('Tab');
        if (await page.evaluate((sel) => document.activeElement && document.activeElement.matches(sel), c.selector)) return { presses: n };
      }
      throw new Error(`${c.selector} never got the focus in ${c.max || 100} Tab presses`);
    },
    async press(c) {
      await page.evaluate(() => { delete document.documentElement.dataset.ready; });
      await page.keyboard.press(c.key);
      if (c.view) await rendered(c.view);
      return {};
    },
    async viewport(c) { await page.setViewportSize({ width: c.width, height: c.height }); return {}; },
    async screenshot(c) { await page.screenshot({ path: c.path, fullPage: !!c.full }); return { path: c.path }; },
    async widths() {
      return page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, viewport: window.innerWidth }));
    },
    async timing() {
      return page.evaluate(() => ({
        first_render_ms: window.heraldFirstRenderMs,
        dom_content_loaded_ms: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
        transferred_bytes: performance.getEntriesByType('resource').reduce((t, r) => t + r.transferSize, 0)
          + performance.getEntriesByType('navigation')[0].transferSize,
      }));
    },
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let c;
    try {
      c = JSON.parse(line);
      const f = commands[c.cmd];
      if (!f) throw new Error(`unknown command ${c.cmd}`);
      const answer = await f(c);
      out({ ok: true, ...answer, errors });
    } catch (e) {
      out({ error: `${c && c.cmd}: ${e.message}`, errors });
    }
    errors = [];
  }
  await browser.close();
}

main().catch((e) => { out({ error: `browser: ${e.message}` }); process.exit(1); });
