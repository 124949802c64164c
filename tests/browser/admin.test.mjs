// The operators' admin in headless Chromium, against a real warmline that
// .ci/browser started (its own database, spill directory, simulator and
// tenant). The tests run in order in one browser; each takes the
// screenshot of the page it is about for docs/screenshots/.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test as nodeTest } from 'node:test';

import {
  KNOWN_CALLER,
  PHONE,
  env,
  eventually,
  freshCallId,
  futureWeekday,
  launch,
  loginAs,
  newPage,
  retell,
  retellCall,
  screenshot,
} from './support.mjs';

/** Every page the issue names; each must send a stranger to the login. */
const PAGES = [
  '/admin',
  '/admin/calls',
  '/admin/calls/call_nobody_here',
  '/admin/metrics',
  '/admin/cache',
  '/admin/upstreams',
  '/admin/tenants',
  '/admin/tenants/new',
  `/admin/tenants/${env.tenantId}`,
  '/admin/events',
  '/admin/alerts',
];

// A test that hangs fails instead of holding the run until its timeout;
// one that fails leaves the admin page it was on (HTML and PNG) beside
// warmline's log, for whoever reads the CI output.
const test = (name, fn) =>
  nodeTest(name, { timeout: 60_000 }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      await keepEvidence(name);
      throw e;
    }
  });

async function keepEvidence(name) {
  if (!env.artifacts || !adminPage) return;
  const base = path.join(env.artifacts, name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80));
  try {
    mkdirSync(env.artifacts, { recursive: true });
    writeFileSync(`${base}.html`, `<!-- ${adminPage.url()} -->\n${await adminPage.content()}`);
    await adminPage.screenshot({ path: `${base}.png`, timeout: 5_000 });
  } catch {
    // Evidence is a courtesy: the test's own failure is what is reported.
  }
}

let browser;
let adminPage; // logged in as the admin, shared by the tests below

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** The admin's page, logged in once (through the login form). */
async function admin() {
  adminPage ??= await loginAs(browser, env.adminPassword);
  return adminPage;
}

/** Opens `where` on `page`, asserting the page exists. */
async function open(page, where) {
  const resp = await page.goto(where);
  assert.equal(resp.status(), 200, `GET ${where} answered ${resp.status()}`);
  return resp;
}

/** Submits a form built in the page (as a same-origin page could), and
 * returns the response to its POST once the answer is shown. */
async function submitForm(page, action, fields) {
  const [resp] = await Promise.all([
    page.waitForResponse(
      (r) => new URL(r.url()).pathname === action && r.request().method() === 'POST',
    ),
    page.waitForURL((u) => u.pathname === action),
    page.evaluate(
      ({ action, fields }) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        for (const [name, value] of Object.entries(fields)) {
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = value;
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      },
      { action, fields },
    ),
  ]);
  return resp;
}

/** The CSRF token the page's forms carry (the logout form has it on every page). */
async function csrfOf(page) {
  return page.locator('input[name="csrf"]').first().inputValue();
}

/** A signed inbound call to the tenant; returns the dynamic variables. */
async function inbound(callId) {
  const { status, json, text } = await retell('/retell/inbound', {
    event: 'call_inbound',
    call_inbound: { from_number: KNOWN_CALLER, to_number: env.tenantNumber, call_id: callId },
  });
  assert.equal(status, 200, text);
  return json.call_inbound.dynamic_variables ?? {};
}

// One call through every signed webhook, made once and shared by the call
// log, call detail and tool-call tests.
const TRANSCRIPT_LINE = 'I would like a teeth cleaning next week, please.';
let theCall;
function call() {
  theCall ??= (async () => {
    const id = freshCallId('log');
    const vars = await inbound(id);
    assert.equal(vars.business_name, env.tenantName, JSON.stringify(vars));
    const started = await retell('/retell/events', { event: 'call_started', call: retellCall(id) });
    assert.equal(started.status, 200, started.text);
    const day = futureWeekday();
    const tool = await retell('/retell/functions/check_availability', {
      name: 'check_availability',
      call: retellCall(id),
      args: { date: day },
    });
    assert.equal(tool.status, 200, tool.text);
    assert.match(tool.json.result, /free|available|no /i, tool.text);
    const ended = retellCall(id, {
      call_status: 'ended',
      end_timestamp: Date.now(),
      duration_ms: 90_000,
      disconnection_reason: 'user_hangup',
      transcript: `Agent: Thanks for calling ${env.tenantName}, how can I help?\nUser: ${TRANSCRIPT_LINE}\nAgent: Let me check what is free.`,
    });
    const end = await retell('/retell/events', { event: 'call_ended', call: ended });
    assert.equal(end.status, 200, end.text);
    const analyzed = await retell('/retell/events', {
      event: 'call_analyzed',
      call: {
        ...ended,
        call_analysis: {
          call_summary: 'The caller asked for a teeth cleaning next week.',
          user_sentiment: 'Positive',
          call_successful: true,
        },
      },
    });
    assert.equal(analyzed.status, 200, analyzed.text);
    return { id, day, toolAnswer: tool.json.result };
  })();
  return theCall;
}

// ----------------------------------------------------------------- doors

test('unauthenticated requests to every admin page land on the login', async (t) => {
  const page = await newPage(browser);
  try {
    for (const where of PAGES) {
      await t.test(where, async () => {
        await page.goto(where);
        const at = new URL(page.url());
        assert.equal(at.pathname, '/admin/login', `${where} showed ${page.url()}`);
        assert.equal(at.searchParams.get('next'), where);
        await page.getByLabel('Password').waitFor();
      });
    }
    await page.goto('/admin/login');
    await screenshot(page, 'login');
  } finally {
    await page.context().close();
  }
});

test('an operator logs in with the password and lands on the page asked for', async () => {
  const page = await newPage(browser);
  try {
    await page.goto('/admin/events');
    assert.equal(new URL(page.url()).pathname, '/admin/login');
    await page.getByLabel('Password').fill('not the password at all');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not right' }).waitFor();
    assert.equal(await page.context().cookies().then((c) => c.length), 0, 'no session yet');

    await page.getByLabel('Password').fill(env.adminPassword);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/admin/events'),
      page.getByRole('button', { name: 'Log in' }).click(),
    ]);
    await page.getByRole('heading', { name: 'Parked events' }).waitFor();
    assert.equal((await page.locator('header .who').textContent()).trim(), 'admin');
    const [cookie] = await page.context().cookies();
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');

    // Logging out ends the session: the pages send us back to the login.
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/admin/login'),
      page.getByRole('button', { name: 'Log out' }).click(),
    ]);
    await page.goto('/admin');
    assert.equal(new URL(page.url()).pathname, '/admin/login');
  } finally {
    await page.context().close();
  }
});

test('the overview shows the summary bar, on a laptop and on a phone', async () => {
  await call();
  const page = await admin();
  await open(page, '/admin');
  const bar = page.getByRole('region', { name: 'Summary' });
  const today = bar.getByRole('link', { name: /calls today/ });
  // The call is counted once its end is written behind.
  await eventually(page, async () => {
    const n = Number((await today.locator('b').textContent()).trim());
    assert.ok(n >= 1, `calls today: ${n}`);
  });
  await bar.getByRole('link', { name: /parked/ }).waitFor();
  await bar.locator('.health', { hasText: 'database' }).locator('.dot.ok').waitFor();
  await screenshot(page, 'overview');

  const phone = await loginAs(browser, env.adminPassword, { viewport: PHONE });
  try {
    await phone.getByRole('heading', { name: 'Overview' }).waitFor();
    const width = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= PHONE.width + 1, `the overview scrolls sideways on a phone (${width}px)`);
    await screenshot(phone, 'overview-phone');
  } finally {
    await phone.context().close();
  }
});

// ----------------------------------------------------------------- calls

test('a call made through a signed webhook appears in the list and its detail shows the transcript', async () => {
  const { id } = await call();
  const page = await admin();
  await open(page, '/admin/calls');
  const link = page.getByRole('link', { name: id, exact: true });
  // Written behind the acknowledgement: it shows up a moment later.
  await eventually(page, () => link.waitFor({ timeout: 500 }));
  const row = page.locator('tr', { has: link });
  await row.getByText(env.tenantId).waitFor();
  assert.ok(
    !(await row.textContent()).includes(KNOWN_CALLER.slice(2)),
    'the caller is masked in the list',
  );
  await screenshot(page, 'calls');

  await Promise.all([page.waitForURL(`**/admin/calls/${id}`), link.click()]);
  await page.getByRole('heading', { name: `Call ${id}` }).waitFor();
  await page.locator('pre.transcript', { hasText: TRANSCRIPT_LINE }).waitFor();
  await page.getByRole('cell', { name: 'user_hangup' }).waitFor();
  await screenshot(page, 'call-detail');
});

test("the call's detail shows its tool calls with their arguments and answers", async () => {
  const { id, day, toolAnswer } = await call();
  const page = await admin();
  await open(page, `/admin/calls/${id}`);
  const tools = page.locator('#tool-calls');
  await tools.getByRole('heading', { name: 'Tool calls' }).waitFor();
  const row = tools.locator('tr', { hasText: 'check_availability' });
  // Recorded beside the answer: it shows up a moment later.
  await eventually(page, () => row.first().waitFor({ timeout: 500 }));
  await row.getByText(day).first().waitFor();
  await row.getByText(toolAnswer.slice(0, 40)).first().waitFor();
  await row.locator('[data-outcome="ok"]').waitFor();
  // The picture shows how the call was answered, below its facts.
  await screenshot(page, 'call-detail', { scrollTo: page.locator('#context-answered, #tool-calls').first() });
});

test("daily metrics chart the day's calls", async () => {
  await call();
  const page = await admin();
  await open(page, '/admin/metrics?days=7');
  await page.getByRole('img', { name: /calls and bookings per day/i }).waitFor();
  const total = page.locator('tr', { has: page.locator('th', { hasText: /^total$/ }) }).locator('td').first();
  await eventually(page, async () => {
    const calls = Number((await total.textContent()).trim());
    assert.ok(calls >= 1, `total calls ${calls}`);
  });
  await screenshot(page, 'metrics');
});

// ----------------------------------------------------------------- cache

test('a namespace flushed through the confirmation drops to zero entries', async () => {
  const page = await admin();
  await open(page, '/admin/cache');
  const entries = page.locator('td[data-namespace-entries="tenant"]');
  const count = async () => Number((await entries.textContent()).trim());
  if ((await count()) === 0) {
    await Promise.all([
      page.waitForURL('**/admin/cache?*'),
      page.getByRole('button', { name: /warm up/i }).click(),
    ]);
  }
  // The L1's count settles a moment after its writes.
  await eventually(page, async () => assert.ok((await count()) > 0, 'tenant entries cached'));
  await screenshot(page, 'cache');

  await page.locator('select[name="scope"]').selectOption('namespace');
  await page.locator('select[name="namespace"]').selectOption('tenant');
  await Promise.all([
    page.waitForURL('**/admin/cache/flush'),
    page.getByRole('button', { name: 'Flush…' }).click(),
  ]);
  // The confirmation flushes nothing by itself.
  await page.getByRole('heading', { name: /flush namespace tenant\?/i }).waitFor();
  await screenshot(page, 'cache-flush-confirm');
  const other = await page.context().newPage();
  try {
    await open(other, '/admin/cache');
    const still = Number((await other.locator('td[data-namespace-entries="tenant"]').textContent()).trim());
    assert.ok(still > 0, 'asking for the confirmation flushed nothing');
  } finally {
    await other.close();
  }

  await Promise.all([
    page.waitForURL('**/admin/cache?*'),
    page.getByRole('button', { name: 'Yes, flush namespace tenant' }).click(),
  ]);
  await page.getByRole('status').filter({ hasText: /flushed/i }).waitFor();
  await eventually(page, async () => assert.equal(await count(), 0, 'tenant entries after the flush'));
  await page.getByRole('cell', { name: 'cache.flush' }).first().waitFor();
});

test('the viewer sees no flush form and cannot flush', async () => {
  const viewer = await loginAs(browser, env.viewerPassword, { next: '/admin/cache' });
  try {
    await viewer.getByRole('heading', { name: 'Cache' }).waitFor();
    assert.equal((await viewer.locator('header .who').textContent()).trim(), 'viewer');
    assert.equal(await viewer.getByRole('button', { name: 'Flush…' }).count(), 0);
    // With its own valid CSRF token, a viewer's flush is still refused.
    const resp = await submitForm(viewer, '/admin/cache/flush', {
      csrf: await csrfOf(viewer),
      scope: 'all',
      namespace: '',
      value: '',
      confirm: 'yes',
    });
    assert.equal(resp.status(), 403);
  } finally {
    await viewer.context().close();
  }
});

test("a form without the session's CSRF token is refused", async () => {
  const page = await admin();
  await open(page, '/admin/cache');
  const resp = await submitForm(page, '/admin/cache/flush', {
    csrf: 'not-the-token',
    scope: 'all',
    namespace: '',
    value: '',
    confirm: 'yes',
  });
  assert.equal(resp.status(), 403);
});

// ---------------------------------------------------------- parked events

test('a parked event is re-applied from its page', async () => {
  const page = await admin();
  await open(page, '/admin/events');
  const row = page.locator('tr', { hasText: env.parkedCallId });
  await row.waitFor();
  await row.getByText('no such table').waitFor();
  await screenshot(page, 'events');

  // The button asks with confirm(), which the page's dialog handler accepts.
  await Promise.all([
    page.waitForURL('**/admin/events?*'),
    page.getByRole('button', { name: 'Apply all again' }).click(),
  ]);
  await page.getByRole('status').filter({ hasText: '1 parked event(s) applied; 0 still parked' }).waitFor();
  await page.getByText('Nothing is parked').waitFor();
  await open(page, `/admin/calls/${env.parkedCallId}`);
  await page.getByRole('heading', { name: `Call ${env.parkedCallId}` }).waitFor();
});

// -------------------------------------------------------------- upstreams

test("upstreams show each upstream's latency, errors and breaker", async () => {
  await call(); // so the CRM, memory and calendar were asked
  const page = await admin();
  await open(page, '/admin/upstreams');
  await page.getByRole('heading', { name: 'Upstreams', exact: true }).waitFor();
  await page.getByText(/gohighlevel|ghl/i).first().waitFor();
  await page.getByText(/p95/i).first().waitFor();
  await page.getByText(/breaker|closed/i).first().waitFor();
  await screenshot(page, 'upstreams');
});

// ---------------------------------------------------------------- tenants

test('a tenant edited in the page answers the next inbound call with its new name', async () => {
  const page = await admin();
  await open(page, '/admin/tenants');
  const row = page.locator(`tr[data-tenant="${env.tenantId}"]`);
  const link = row.getByRole('link', { name: env.tenantName, exact: true });
  await link.waitFor();
  await screenshot(page, 'tenants');

  await Promise.all([page.waitForURL(`**/admin/tenants/${env.tenantId}`), link.click()]);
  const name = page.getByLabel(/business name/i);
  assert.equal(await name.inputValue(), env.tenantName);
  await screenshot(page, 'tenant-edit');
  const renamed = `${env.tenantName} Renamed ${Date.now() % 10_000}`;
  await name.fill(renamed);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/admin/tenants'),
    page.getByRole('button', { name: 'Save changes' }).click(),
  ]);
  await page.getByRole('status').waitFor();
  await row.getByRole('link', { name: renamed, exact: true }).waitFor();

  // The next inbound call speaks the new name: the save invalidated the
  // tenant's cache instead of leaving it to expire.
  const vars = await inbound(freshCallId('renamed'));
  assert.equal(vars.business_name, renamed, JSON.stringify(vars));
});

// ----------------------------------------------------------------- alerts

test('forced fallbacks raise an alert that is then acknowledged', async () => {
  // A tool call for a call warmline has no session for takes the fallback
  // cascade (tenant defaults): each one is an activation.
  for (let i = 0; i < 6; i++) {
    const { status, text } = await retell('/retell/functions/list_services', {
      name: 'list_services',
      call: retellCall(freshCallId(`fallback${i}`)),
      args: {},
    });
    assert.equal(status, 200, text);
  }
  const page = await admin();
  await open(page, '/admin/alerts');
  const alert = page.locator('table.alerts tr[data-alert="WarmlineFallbacksHigh"]').first();
  // The evaluator runs every WARMLINE_ALERT_EVAL_MS (.ci/browser: 500 ms).
  await eventually(page, () => alert.waitFor({ timeout: 500 }), { timeoutMs: 20_000 });
  await alert.getByText(/fallback/i).first().waitFor();
  await screenshot(page, 'alerts');

  await Promise.all([
    page.waitForURL((u) => u.pathname === '/admin/alerts'),
    alert.getByRole('button', { name: /acknowledge/i }).click(),
  ]);
  await alert.locator('.acknowledged', { hasText: /by admin at/ }).waitFor();
  assert.equal(await alert.getByRole('button', { name: /acknowledge/i }).count(), 0);
});
