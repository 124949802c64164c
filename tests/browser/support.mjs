// What the admin browser tests share: the server under test (from the
// environment `.ci/browser` sets), signed Retell webhooks, logins in
// headless Chromium, screenshots, and waiting on a condition.

import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the browser tests with .ci/browser`);
  }
  return value;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const env = {
  url: required('WARMLINE_URL'),
  adminPassword: required('WARMLINE_BROWSER_ADMIN_PASSWORD'),
  viewerPassword: required('WARMLINE_BROWSER_VIEWER_PASSWORD'),
  retellKey: required('RETELL_API_KEY'),
  // The tenant .ci/browser imported, on the simulator's demo data.
  tenantId: required('WARMLINE_BROWSER_TENANT'),
  tenantNumber: required('WARMLINE_BROWSER_TENANT_NUMBER'),
  tenantName: required('WARMLINE_BROWSER_TENANT_NAME'),
  // A call .ci/browser parked in the spill directory before the start.
  parkedCallId: required('WARMLINE_BROWSER_PARKED_CALL'),
  chromium: process.env.WARMLINE_CHROMIUM || '/usr/bin/chromium',
  screenshots: process.env.WARMLINE_SCREENSHOTS || path.resolve(HERE, '../../docs/screenshots'),
  // Where a failing test leaves the page it was on (unset: nowhere).
  artifacts: process.env.WARMLINE_BROWSER_ARTIFACTS || '',
};

/// A caller the simulator's CRM knows (Ana Souza, with memories).
export const KNOWN_CALLER = '+15550100001';

export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

// ------------------------------------------------------------- webhooks

/// A call id of its own, in letters: pages mask digit runs that could be
/// phone numbers, and an id should read the same everywhere.
export function freshCallId(what) {
  const letters = randomBytes(6).toString('hex').replace(/[0-9]/g, (d) => 'ghijklmnop'[d]);
  return `call_browser_${what}_${letters}`;
}

/// `x-retell-signature: v=<ms>,d=hex(HMAC-SHA256(api_key, body ++ ms))`,
/// as Retell signs (src/webhooks/signature.rs).
export function signRetell(body, key = env.retellKey, ms = Date.now()) {
  const digest = createHmac('sha256', key).update(body).update(String(ms)).digest('hex');
  return `v=${ms},d=${digest}`;
}

/// POSTs `payload` to a Retell webhook path, signed; returns status and JSON.
export async function retell(pathname, payload) {
  const body = JSON.stringify(payload);
  const resp = await fetch(env.url + pathname, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-retell-signature': signRetell(body) },
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Left null: the assertion on it shows the status.
  }
  return { status: resp.status, json, text };
}

/// Retell's `call` object for one of the tenant's calls.
export function retellCall(callId, extra = {}) {
  return {
    call_id: callId,
    agent_id: 'agent_browser',
    call_type: 'phone_call',
    direction: 'inbound',
    from_number: KNOWN_CALLER,
    to_number: env.tenantNumber,
    call_status: 'ongoing',
    start_timestamp: Date.now() - 90_000,
    ...extra,
  };
}

/// A weekday a week or two ahead, YYYY-MM-DD: the simulated calendars are
/// open 9:00–17:00 on weekdays.
export function futureWeekday() {
  const d = new Date(Date.now() + 8 * 86_400_000);
  while (d.getUTCDay() === 0 || d.getUTCDay() === 6) d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

// -------------------------------------------------------------- browser

export async function launch() {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    // As root (CI), Chromium runs only without its sandbox; the rest keeps
    // it from calling out of this closed network at every start.
    args: [
      '--no-sandbox',
      '--disable-dev-shm-usage',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export async function newPage(browser, viewport = LAPTOP) {
  const context = await browser.newContext({
    baseURL: env.url,
    viewport,
    deviceScaleFactor: 1,
    isMobile: viewport.width < 600,
    hasTouch: viewport.width < 600,
    // Screenshots read the same wherever they are taken.
    locale: 'en-US',
    timezoneId: 'UTC',
    colorScheme: 'light',
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  // The parked-events form asks with `confirm()`: say yes.
  page.on('dialog', (dialog) => dialog.accept());
  return page;
}

/// Logs in through the login page; returns the page, on `next`.
export async function loginAs(browser, password, { next = '/admin', viewport = LAPTOP } = {}) {
  const page = await newPage(browser, viewport);
  await page.goto(`/admin/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === new URL(next, env.url).pathname),
    page.getByRole('button', { name: 'Log in' }).click(),
  ]);
  return page;
}

/// Saves a screenshot of the viewport as docs/screenshots/NAME.png;
/// `scrollTo` (a locator) is brought to the top of the viewport first.
export async function screenshot(page, name, { scrollTo } = {}) {
  mkdirSync(env.screenshots, { recursive: true });
  // Let the page settle (fonts, htmx's first swap) so the picture is whole.
  await page.waitForLoadState('load');
  if (scrollTo) {
    await scrollTo.evaluate((el) => el.scrollIntoView({ block: 'start' }));
  }
  await page.screenshot({
    path: path.join(env.screenshots, `${name}.png`),
    fullPage: false,
    animations: 'disabled',
    caret: 'hide',
  });
}

/// Runs `check` (which throws while the condition does not hold), reloading
/// `page` between tries, until it passes or `timeoutMs` is over; the last
/// failure is thrown then.
export async function eventually(page, check, { timeoutMs = 10_000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
    if (page) await page.reload();
  }
}
