// The web UI behind `shoal proxy`, in Debian's Chromium: the same pages on the proxy's
// address, with a cluster column and a cluster filter on Instances and the clusters on
// Nodes. Started by tests/e2e/proxy/main.rs with three clusters and a project
// `weighted` whose runs went to all of them.
//
//   SHOAL_URL, SHOAL_TOKEN, SHOAL_CHROMIUM, SHOAL_SCREENSHOTS, SHOAL_CLUSTERS (a,b,c)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('SHOAL_URL');
const shots = join(env('SHOAL_SCREENSHOTS'), 'proxy');
const clusters = env('SHOAL_CLUSTERS').split(',');
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({ executablePath: env('SHOAL_CHROMIUM'), headless: true, args: ['--no-sandbox', '--disable-gpu'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const external = [];
const pageErrors = [];
context.on('request', (r) => {
  if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url());
});
const page = await context.newPage();
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.setDefaultTimeout(20_000);

async function until(what, f, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await f().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const clusterCells = () =>
  page.locator('table[aria-label="Instances"] tbody tr[data-instance] td:last-child').allTextContents();

try {
  await page.goto(`${base}/`);
  await page.getByLabel('API token', { exact: true }).fill(env('SHOAL_TOKEN'));
  await page.keyboard.press('Enter');
  await page.getByRole('link', { name: 'Shoal · proxy' }).waitFor();
  await page.getByLabel('Project', { exact: true }).selectOption('weighted');
  await page.goto(`${base}/#/instances`);
  await page.getByRole('columnheader', { name: 'Cluster' }).waitFor();
  await until('instances from every cluster', async () => {
    const seen = new Set(await clusterCells());
    return clusters.every((c) => seen.has(c));
  });
  await page.screenshot({ path: join(shots, 'instances.png') });
  for (const c of clusters) {
    await page.getByLabel('Cluster', { exact: true }).selectOption(c);
    await until(`only ${c}'s instances`, async () => {
      const cells = await clusterCells();
      return cells.length > 0 && cells.every((x) => x === c);
    });
  }
  await page.screenshot({ path: join(shots, 'instances-one-cluster.png') });

  await page.goto(`${base}/#/nodes`);
  const table = page.getByRole('table', { name: 'Clusters' });
  await table.waitFor();
  for (const c of clusters) await table.getByRole('cell', { name: c, exact: true }).waitFor();
  await page.screenshot({ path: join(shots, 'clusters.png') });

  if (external.length) throw new Error(`requests off the proxy: ${external.join(', ')}`);
  if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  console.log('all browser checks passed');
} catch (e) {
  await page.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
  console.error(`FAILED: ${e.stack || e}`);
  console.error(`page: ${page.url()}`);
  if (pageErrors.length) console.error(`uncaught errors in the page: ${pageErrors.join(' | ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
