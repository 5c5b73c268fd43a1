// The web UI in a real browser: Debian's Chromium, headless, driven by playwright-core
// against a real `shoal server` on 127.0.0.1 (started by tests/e2e/ui.rs, which passes
// its address and admin token). Every step acts through the page as a user would and
// waits for what the server answers; a screenshot of each page goes to
// SHOAL_SCREENSHOTS. Any request the page makes to another address fails the run.
//
//   SHOAL_URL, SHOAL_TOKEN, SHOAL_CHROMIUM, SHOAL_SCREENSHOTS, SHOAL_REPO,
//   SHOAL_PLUGIN_DIR (testkit-9.1.0.toml/.wasm and testkit-9.2.0.toml/.wasm)

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('SHOAL_URL');
const adminToken = env('SHOAL_TOKEN');
const shots = env('SHOAL_SCREENSHOTS');
const repo = env('SHOAL_REPO');
const pluginDir = env('SHOAL_PLUGIN_DIR');
mkdirSync(shots, { recursive: true });

const started = Date.now();
function step(what) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);
}

/// Poll `f` until it returns something truthy; fail with `what` after `ms`.
async function until(what, f, ms = 30_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/// The REST API, for what the test arranges outside the page (a run started elsewhere).
async function api(method, path, body) {
  const r = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}

const browser = await chromium.launch({
  executablePath: env('SHOAL_CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const external = [];
const pageErrors = [];
context.on('request', (r) => {
  const u = r.url();
  if (!u.startsWith(base) && !u.startsWith('data:')) external.push(u);
});
const page = await context.newPage();
page.on('pageerror', (e) => pageErrors.push(String(e)));
// The page's CSP allows nothing inline or foreign: a violation would mean it breaks it.
page.on('console', (m) => {
  if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
});
page.setDefaultTimeout(20_000);
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
const byLabel = (label) => page.getByLabel(label, { exact: true });
const button = (name) => page.getByRole('button', { name, exact: true });
const section = (name) => page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true });
const nav = (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
const visit = async (hash) => {
  await page.goto(`${base}/#${hash}`);
};

try {
  // ---- sign-in -------------------------------------------------------------------
  step('sign in: a wrong token is refused with the server message');
  await page.goto(`${base}/`);
  await byLabel('API token').fill('shoal_not-a-token');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'unauthenticated' }).waitFor();
  await shot('01-sign-in');
  await byLabel('API token').fill(adminToken);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'No project' }).waitFor();
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('shoal.token'), local: localStorage.length }));
  if (stored.session !== adminToken || stored.local !== 0) throw new Error(`the token must live in sessionStorage only: ${JSON.stringify(stored)}`);

  // ---- admin: project, processes, a read-only user ---------------------------------
  step('admin: create a project, allow processes, a read-only user with a token');
  await nav('Admin').click();
  await byLabel('New project').fill('ui-demo');
  await button('Create project').click();
  await until('the project switcher to show ui-demo', async () => (await byLabel('Project').inputValue()) === 'ui-demo');
  await page.getByRole('row', { name: /ui-demo/ }).getByRole('button', { name: 'Allow processes' }).click();
  await page.getByRole('row', { name: /ui-demo/ }).getByRole('button', { name: 'Forbid processes' }).waitFor();
  await byLabel('New user').fill('viewer');
  await button('Create user').click();
  await page.getByRole('row', { name: /viewer/ }).getByRole('button', { name: 'New token' }).click();
  const viewerToken = await byLabel('New token value').inputValue();
  if (!viewerToken.startsWith('shoal_')) throw new Error(`no token shown: ${viewerToken}`);
  await byLabel('User').fill('viewer');
  await byLabel('Level').selectOption('read');
  await button('Grant').click();
  await page.getByLabel('Permissions').getByRole('cell', { name: 'viewer' }).waitFor();
  await shot('02-admin');

  // ---- workflows: editor, server validation at its line, save ----------------------
  step('workflows: save publish-report through the editor');
  const publish = readFileSync(join(repo, 'examples/publish.yaml'), 'utf8');
  const daily = readFileSync(join(repo, 'examples/daily-report.yaml'), 'utf8');
  await nav('Workflows').click();
  await button('New workflow').click();
  await byLabel('Workflow definition (YAML)').fill(publish);
  await button('Save').click();
  await page.getByRole('heading', { name: /publish-report/ }).waitFor();
  await button('Bring online').click();
  await button('Take offline').waitFor();

  step('workflows: the example as written names a file; the server says where');
  await nav('Workflows').click();
  await button('New workflow').click();
  await byLabel('Workflow definition (YAML)').fill(daily);
  await button('Validate').click();
  const problems = page.getByRole('alert', { name: 'Problems' });
  await problems.waitFor();
  const refLine = daily.split('\n').findIndex((l) => l.includes('$WORKFLOW{')) + 1;
  await problems.getByRole('button', { name: `line ${refLine}` }).waitFor();
  await page.locator(`.gutter-line.bad[data-line="${refLine}"]`).waitFor();
  await shot('03-editor-errors');

  step('workflows: save the example with its child by name, see its DAG');
  await byLabel('Workflow definition (YAML)').fill(daily.replace('$WORKFLOW{"publish.yaml"}', 'publish-report'));
  await button('Save').click();
  await page.getByRole('heading', { name: /daily-report/ }).waitFor();
  await section('Graph').click();
  await until('six tasks in the graph', async () => (await page.locator('.dag .node').count()) === 6);
  await page.locator('.edge-label', { hasText: '${rows} > ${threshold}' }).waitFor();
  await page.locator('.edge-label', { hasText: 'default' }).waitFor();
  await shot('04-workflow-dag');

  step('workflows: a second version and the diff between them');
  await section('Definition').click();
  const editor = byLabel('Workflow definition (YAML)');
  await until('the definition text', async () => (await editor.inputValue()).includes('daily-report'));
  await editor.fill((await editor.inputValue()).replace('description: Extract', 'description: Nightly, extract'));
  await button('Save').click();
  await page.getByRole('status').filter({ hasText: 'Saved as version 2' }).waitFor();
  await section('Versions').click();
  await page.locator('.diff-add', { hasText: 'Nightly, extract' }).waitFor();
  await page.locator('.diff-del', { hasText: 'description: Extract' }).waitFor();
  await shot('05-versions-diff');

  // ---- run and watch ---------------------------------------------------------------
  step('run: bring online, run with a parameter, watch the DAG turn green');
  await button('Bring online').click();
  await button('Take offline').waitFor();
  await section('Run').click();
  await byLabel('Value of threshold').fill('2');
  // Parameters not typed are not sent: the workflow's own value (placeholder) stays.
  if ((await byLabel('Value of day').inputValue()) !== '') throw new Error('day is left to the workflow');
  await button('Run').click();
  await page.waitForURL(/#\/instances\/\d+$/);
  const dailyId = Number(page.url().split('/').pop());
  await page.locator('[data-task="extract"][data-state="running"], [data-task="extract"][data-state="succeeded"]').waitFor();
  await page.locator('.head .badge', { hasText: 'succeeded' }).waitFor({ timeout: 90_000 });
  for (const t of ['extract', 'check-volume', 'busy-day', 'publish', 'announce']) {
    await page.locator(`.dag [data-task="${t}"][data-state="succeeded"]`).waitFor();
  }
  await until('a Gantt bar per attempt', async () => (await page.locator('.gantt-bar').count()) >= 5);
  await shot('06-instance-dag');

  step('log: choose a task by keyboard, open its log');
  await page.locator('.dag [data-task="extract"]').focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /Task extract/ }).waitFor();
  await page.getByLabel('Attempts of extract').getByRole('link', { name: 'log' }).click();
  await page.locator('pre.log', { hasText: 'extracting orders for' }).waitFor();
  await shot('07-task-log');

  // ---- pause and resume a running instance; follow and page a long log --------------
  step('pause and resume: a slow workflow with a long log');
  const slow = `workflow:
  name: slow
  description: A long log, then a slow tail

tasks:
  - name: chatty
    task_type: Shell
    command: |
      for i in $(seq 1 3000); do echo "line $i of a long log, long enough to need more than one page in the viewer"; done
      for i in $(seq 1 25); do echo "tick $i"; sleep 0.2; done
  - name: after
    task_type: Shell
    deps: [chatty]
    command: echo after
`;
  await visit('/workflows/+new/definition');
  await byLabel('Workflow definition (YAML)').fill(slow);
  await button('Save').click();
  await page.getByRole('heading', { name: /slow/ }).waitFor();
  await button('Bring online').click();
  await button('Take offline').waitFor();
  await section('Run').click();
  await button('Run').click();
  await page.waitForURL(/#\/instances\/\d+$/);
  const slowId = Number(page.url().split('/').pop());
  await page.locator('.dag [data-task="chatty"][data-state="running"]').waitFor();
  await button('Pause').click();
  await page.locator('.head .badge', { hasText: /^(ready-pause|paused)$/ }).waitFor();

  step('log: follow the running task in a second tab');
  const chattyId = await until('chatty task instance', async () => {
    const d = await api('GET', `/instances/${slowId}`);
    return d.tasks.find((t) => t.task_name === 'chatty')?.id;
  });
  const logTab = await context.newPage();
  logTab.on('pageerror', (e) => pageErrors.push(String(e)));
  await logTab.setViewportSize({ width: 1280, height: 800 });
  await logTab.goto(`${base}/#/tasks/${chattyId}`);
  // The token lives in one tab's session: a new tab signs in again.
  await logTab.getByLabel('API token', { exact: true }).fill(adminToken);
  await logTab.keyboard.press('Enter');
  await until('a running task to be followed by default', () => logTab.getByLabel('Follow', { exact: true }).isChecked(), 10_000);
  await logTab.locator('pre.log', { hasText: 'tick 5' }).waitFor({ timeout: 30_000 });
  await logTab.screenshot({ path: join(shots, '08-task-log-follow.png') });

  await page.locator('.head .badge', { hasText: /^paused$/ }).waitFor({ timeout: 60_000 });
  const afterState = await page.locator('.dag [data-task="after"]').getAttribute('data-state');
  if (afterState) throw new Error(`a paused instance starts nothing new, but after is ${afterState}`);
  await shot('09-instance-paused');
  await button('Resume').click();
  await page.locator('.head .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  await page.locator('.dag [data-task="after"][data-state="succeeded"]').waitFor();

  step('log: page through the finished long log by byte range');
  await logTab.locator('pre.log', { hasText: 'tick 25' }).waitFor({ timeout: 30_000 });
  await logTab.getByLabel('Follow', { exact: true }).uncheck();
  await logTab.getByText(/^bytes 0–\d+/).waitFor();
  const firstRange = await logTab.getByText(/^bytes 0–\d+/).textContent();
  const firstEnd = Number(/–(\d+)/.exec(firstRange)[1]);
  if (!(firstEnd > 60_000 && firstEnd <= 65_536)) throw new Error(`the first page should end near 64 KiB: ${firstRange}`);
  await logTab.getByRole('button', { name: 'Next page' }).or(logTab.getByRole('button', { name: 'Next ›' })).click();
  await logTab.getByText(new RegExp(`^bytes ${firstEnd}–`)).waitFor();
  await logTab.screenshot({ path: join(shots, '10-task-log-paging.png') });
  await logTab.getByRole('button', { name: '‹ Previous' }).click();
  await logTab.getByText(/^bytes 0–/).waitFor();
  await logTab.close();

  // ---- force success and recover; kill a running task ------------------------------
  step('operations: force a failed task to success, recover; kill a running task');
  const flaky = `workflow:
  name: flaky

tasks:
  - name: breaks
    task_type: Shell
    command: echo "about to fail"; exit 3
  - name: next
    task_type: Shell
    deps: [breaks]
    command: echo "carried on"
  - name: long
    task_type: Shell
    deps: [next]
    command: sleep 60
`;
  await visit('/workflows/+new/definition');
  await byLabel('Workflow definition (YAML)').fill(flaky);
  await button('Save').click();
  await page.getByRole('heading', { name: /flaky/ }).waitFor();
  await button('Bring online').click();
  await button('Take offline').waitFor();
  await section('Run').click();
  await button('Run').click();
  await page.waitForURL(/#\/instances\/\d+$/);
  await page.locator('.head .badge', { hasText: 'failed' }).waitFor({ timeout: 60_000 });
  await page.locator('.dag [data-task="breaks"][data-state="failed"]').click();
  await button('Force success').click();
  await page.locator('.dag [data-task="breaks"][data-state="forced-success"]').waitFor();
  await button('Recover failed').click();
  await page.locator('.dag [data-task="next"][data-state="succeeded"]').waitFor({ timeout: 60_000 });
  await page.locator('.dag [data-task="long"][data-state="running"]').click();
  await button('Kill task').click();
  await page.locator('.dag [data-task="long"][data-state="killed"]').waitFor({ timeout: 30_000 });
  await page.locator('.head .badge', { hasText: /^(failed|stopped)$/ }).waitFor({ timeout: 30_000 });
  await shot('10b-force-success-kill');

  // ---- instances: filters, paging, live updates ------------------------------------
  step('instances: filters and a run started elsewhere appearing live');
  await visit('/instances');
  await page.locator(`tr[data-instance="${slowId}"]`).waitFor();
  await byLabel('Workflow').selectOption('slow');
  await until('only slow listed', async () => {
    const rows = await page.locator('tr[data-instance]').count();
    return rows === 1 && (await page.locator(`tr[data-instance="${slowId}"]`).count()) === 1;
  });
  await byLabel('State').selectOption('failed');
  await page.getByText('No instance matches.').waitFor();
  await button('Clear').click();
  await page.locator(`tr[data-instance="${dailyId}"]`).waitFor();
  const launched = await api('POST', '/projects/ui-demo/definitions/daily-report/runs', { params: { threshold: '10' } });
  await page.locator(`tr[data-instance="${launched.instance}"]`).waitFor();
  await page.locator(`tr[data-instance="${launched.instance}"] .badge`, { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
  await shot('11-instances');

  step('instances: server-side paging over 60 runs of a one-task workflow');
  const tick = await fetch(`${base}/api/v1/projects/ui-demo/definitions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/yaml' },
    body: 'workflow:\n  name: tick\ntasks:\n  - name: t\n    task_type: noop\n',
  });
  if (!tick.ok) throw new Error(`tick: ${tick.status} ${await tick.text()}`);
  await api('POST', '/projects/ui-demo/definitions/tick/online');
  for (let i = 0; i < 60; i++) await api('POST', '/projects/ui-demo/definitions/tick/runs', {});
  await visit('/instances?workflow=tick');
  await page.getByText(/of 2 · 60 in all/).waitFor();
  if ((await page.locator('tr[data-instance]').count()) !== 50) throw new Error('a page holds 50 rows');
  await page.getByRole('button', { name: 'Next page' }).click();
  await until('the second page', async () => (await page.locator('tr[data-instance]').count()) === 10);
  await byLabel('Page number').fill('1');
  await byLabel('Page number').press('Enter');
  await until('back on the first page', async () => (await page.locator('tr[data-instance]').count()) === 50);
  await page.getByRole('button', { name: 'Last page' }).click();
  await until('the last page', async () => (await page.locator('tr[data-instance]').count()) === 10);

  // ---- schedules --------------------------------------------------------------------
  step('schedules: a Quartz expression read aloud, next fire times in its zone');
  await visit('/workflows/daily-report/schedule');
  await byLabel('Quartz cron (with seconds)').fill('0 30 2 ? * MON-FRI');
  await byLabel('Time zone (IANA)').fill('Asia/Shanghai');
  await until('ten fire times at 02:30 +08:00', async () => {
    const fires = await page.locator('ol.fires li').allTextContents();
    return fires.length === 10 && fires.every((f) => f.includes('T02:30:00') && f.endsWith('+08:00'));
  });
  await button('Save schedule').click();
  await page.getByText(/Schedule\s+online/).waitFor();
  await visit('/schedules');
  const row = page.getByRole('row', { name: /daily-report/ });
  await row.waitFor();
  const meaning = await row.locator('td').nth(2).textContent();
  if (!/02:30/.test(meaning) || !/Monday|MON/i.test(meaning)) throw new Error(`plain-language reading: ${meaning}`);
  await row.getByRole('button', { name: 'Next 10 fires' }).click();
  await until('ten fire times listed', async () => (await page.locator('ol.fires li').count()) === 10);
  await shot('12-schedules');

  step('backfill: preview the dates it will run');
  await visit('/workflows/daily-report/backfill');
  await byLabel('First business date').fill('2026-01-01');
  await byLabel('Last business date (included)').fill('2026-01-05');
  await button('Preview dates').click();
  await until('five dates', async () => (await page.locator('ol.dates li').allTextContents()).join(',') === '2026-01-01,2026-01-02,2026-01-03,2026-01-04,2026-01-05');
  await shot('13-backfill-preview');

  // ---- plugins ----------------------------------------------------------------------
  step('plugins: upload two versions, roll back, activate');
  await visit('/plugins');
  for (const v of ['9.1.0', '9.2.0']) {
    await byLabel('Manifest (plugin.toml)').setInputFiles(join(pluginDir, `testkit-${v}.toml`));
    await byLabel('Component (.wasm)').setInputFiles(join(pluginDir, `testkit-${v}.wasm`));
    await button('Upload version').click();
    await page.getByRole('status').filter({ hasText: `Installed testkit ${v}` }).waitFor({ timeout: 60_000 });
    await page.locator(`[data-plugin="testkit"] tr[data-version="${v}"] .badge`, { hasText: 'active' }).waitFor();
  }
  await page.locator('[data-plugin="testkit"]').getByRole('button', { name: 'Roll back' }).click();
  await page.locator('[data-plugin="testkit"] tr[data-version="9.1.0"] .badge', { hasText: 'active' }).waitFor();
  await page.locator('[data-plugin="testkit"] tr[data-version="9.2.0"]').getByRole('button', { name: 'Activate' }).click();
  await page.locator('[data-plugin="testkit"] tr[data-version="9.2.0"] .badge', { hasText: 'active' }).waitFor();
  await shot('14-plugins');

  // ---- nodes, secrets, datasources --------------------------------------------------
  step('nodes and server status');
  await visit('/nodes');
  await page.getByLabel('Server status').filter({ hasText: 'slots free' }).waitFor();
  await shot('15-nodes');

  step('secrets and datasources: by name, never their values');
  await visit('/settings');
  const secrets = page.getByLabel('Secrets');
  await secrets.getByLabel('Name', { exact: true }).fill('api_key');
  await secrets.getByLabel('Value', { exact: true }).fill('hunter2-do-not-show');
  await secrets.getByRole('button', { name: 'Set secret' }).click();
  await secrets.getByRole('cell', { name: 'api_key' }).waitFor();
  const ds = page.getByLabel('Datasources');
  await ds.getByLabel('Name', { exact: true }).fill('warehouse');
  await ds.getByLabel('Database', { exact: true }).fill('dw');
  await ds.getByLabel('User', { exact: true }).fill('etl');
  await ds.getByLabel('Password (empty keeps the stored one)').fill('pw-do-not-show');
  await ds.getByRole('button', { name: 'Save datasource' }).click();
  await ds.getByRole('cell', { name: 'warehouse' }).waitFor();
  await page.reload();
  await page.getByLabel('Datasources').getByRole('cell', { name: 'warehouse' }).waitFor();
  const html = await page.content();
  if (html.includes('hunter2-do-not-show') || html.includes('pw-do-not-show')) throw new Error('a secret value reached the page');
  await shot('16-settings');

  // ---- a read-only user sees buttons it may not press as disabled --------------------
  step('permissions: a read-only user');
  await button('Sign out').click();
  await byLabel('API token').fill(viewerToken);
  await page.keyboard.press('Enter');
  await button('Sign out').waitFor();
  await visit('/workflows');
  await page.getByRole('heading', { name: 'Workflows' }).waitFor();
  const newWf = button('New workflow');
  if (!(await newWf.isDisabled())) throw new Error('a reader may not create workflows');
  if ((await newWf.getAttribute('title')) !== 'needs edit permission on ui-demo') throw new Error(`title: ${await newWf.getAttribute('title')}`);
  await visit(`/instances/${slowId}`);
  await page.locator('.head .badge', { hasText: 'succeeded' }).waitFor();
  if (!(await button('Rerun').isDisabled())) throw new Error('a reader may not rerun');
  if ((await button('Rerun').getAttribute('title')) !== 'needs operate permission on ui-demo') throw new Error('rerun title');
  await shot('17-read-only');

  step('keyboard: the main navigation is reachable with Tab');
  await visit('/workflows');
  await page.getByRole('heading', { name: 'Workflows' }).waitFor();
  await page.locator('body').focus();
  let reached = false;
  for (let i = 0; i < 6 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.textContent === 'Instances');
  }
  if (!reached) throw new Error('Tab never reached the Instances link');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Instances' }).waitFor();

  if (external.length) throw new Error(`the page made requests off this server: ${external.join(', ')}`);
  if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  step('all browser checks passed');
} catch (e) {
  for (const [i, p] of context.pages().entries()) {
    await p.screenshot({ path: join(shots, `failure-${i}.png`) }).catch(() => {});
  }
  console.error(`FAILED: ${e.stack || e}`);
  console.error(`page: ${page.url()}`);
  if (pageErrors.length) console.error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
