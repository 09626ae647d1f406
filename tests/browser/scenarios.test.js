// kiln's web UI in headless chromium: the seed flow (create a deployment,
// add provisioner-os-install, drag two nodes onto it, commit, watch it
// anneal), a failing role retried and fixed, and a bad JSON edit refused.
//
// run.sh starts kiln and sets KILN_URL, KILN_TOKEN, KILN_CHROMIUM and
// KILN_ARTIFACTS.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.KILN_URL;
const TOKEN = process.env.KILN_TOKEN;
const ARTIFACTS = process.env.KILN_ARTIFACTS ?? 'target/browser-artifacts';
const WAIT = 20_000;

let context;
let profile;

before(async () => {
  assert.ok(URL && TOKEN, 'run through tests/browser/run.sh (KILN_URL, KILN_TOKEN)');
  profile = mkdtempSync(join(tmpdir(), 'kiln-browser-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.KILN_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    baseURL: URL,
  });
  context.setDefaultTimeout(WAIT);
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A new tab (sessionStorage is per tab), signed in at `path`. */
async function signedIn(path) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`page error on ${page.url()}: ${e.message}`));
  await page.goto(path);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('#login').waitFor({ state: 'hidden' });
  return page;
}

async function shot(page, name, clip) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), clip });
}

async function createDeployment(page, name, description = '') {
  await page.goto('/ui/deployments');
  await page.fill('[data-form=create-deployment] [data-field=name]', name);
  await page.fill('[data-form=create-deployment] [aria-label=Description]', description);
  await page.click('[data-form=create-deployment] button[type=submit]');
  await page.waitForURL(`**/ui/deployments/${name}`);
}

async function addRole(page, role) {
  await page.selectOption('[data-add-role]', role);
  await page.click('.add-role button[type=submit]');
  await page.locator(`[data-role="${role}"]`).waitFor();
}

async function drag(page, node, role) {
  await page.locator(`.palette [data-node="${node}"]`).dragTo(page.locator(`[data-role="${role}"]`));
}

const noderoles = (page, role, state) =>
  page.locator(`[data-role="${role}"] [data-noderole]${state ? `[data-state="${state}"]` : ''}`);

/**
 * What "installed" means, one step after another: the noderoles go active,
 * then the (simulated) machines reboot into the installer and come back
 * alive, booting from disk.
 */
function installSteps(role, nodes) {
  const steps = [
    {
      name: 'noderoles active',
      until: async (page) => {
        await page.waitForFunction(
          ([r, n]) => document.querySelectorAll(`[data-role="${r}"] [data-noderole][data-state="active"]`).length === n,
          [role, nodes.length],
        );
      },
    },
    {
      name: 'nodes installed and alive again',
      until: async (page) => {
        await page.goto('/ui/nodes');
        for (const node of nodes) {
          const row = page.locator(`tr[data-node="${node}"]`);
          await row.locator('.flag.on', { hasText: 'alive' }).first().waitFor({ timeout: 120_000 });
          await row.locator('td.mono', { hasText: 'local' }).waitFor({ timeout: 120_000 });
        }
      },
    },
  ];
  return steps;
}

test('install an OS from the web UI: bind by dragging, commit, watch it anneal', async () => {
  const page = await signedIn('/ui/nodes');
  await page.locator('tr[data-node="n1.lab.example"][draggable="true"]').waitFor();
  await shot(page, 'nodes');

  await createDeployment(page, 'ubuntu');
  await addRole(page, 'provisioner-os-install');
  const role = 'provisioner-os-install';
  const nodes = ['n1.lab.example', 'n2.lab.example'];
  for (const node of nodes) await drag(page, node, role);
  await assert.doesNotReject(() => noderoles(page, role, 'proposed').nth(1).waitFor());
  assert.equal(await noderoles(page, role, 'proposed').count(), 2);
  await shot(page, 'deployment-proposed');

  // Dropping a node that is already bound shows the API's refusal there.
  await drag(page, 'n1.lab.example', role);
  await page.locator(`[data-role="${role}"] [data-message=zone]`).waitFor();
  assert.match(await page.locator(`[data-role="${role}"] [data-message=zone]`).innerText(), /n1\.lab\.example/);

  // Everything after the commit arrives live: the page is never reloaded.
  await page.evaluate(() => (window.kilnNotReloaded = true));
  await page.click('[data-action=commit]');
  for (const step of installSteps(role, nodes).filter((s) => s.name === 'noderoles active')) {
    await step.until(page);
  }
  assert.equal(await page.evaluate(() => window.kilnNotReloaded), true);
  await page.locator('.view-head .badge.state-active').waitFor();
  await page.locator('[data-action=commit]:not([disabled])').waitFor();
  // The installer's turn: os-install marked both nodes not alive.
  for (const node of nodes) await page.locator(`.palette [data-node="${node}"] .flag.off`).waitFor();
  await shot(page, 'deployment-active');
  await shot(page, 'readme-deployment', { x: 0, y: 0, width: 1280, height: 470 });

  await page.goto('/ui/deployments');
  await page.locator('[data-deployment=ubuntu] [data-noderole][data-state=active]').nth(1).waitFor();
  await shot(page, 'deployments');

  await page.goto('/ui/runs');
  await page.locator('[data-slots]').waitFor();
  await shot(page, 'runs');

  // Simulated installs take about a second, so what the nodes page shows
  // now (installing, or already back on local) is a matter of timing.
  await page.goto('/ui/nodes');
  await page.locator('tr[data-node="n1.lab.example"]').waitFor();
  await shot(page, 'nodes-after-commit');

  for (const step of installSteps(role, nodes).filter((s) => s.name !== 'noderoles active')) {
    await step.until(page);
  }
  await page.close();
});

test('a failing role shows error; Retry runs it again; fixed data makes it active', async () => {
  const page = await signedIn('/ui/deployments');
  await createDeployment(page, 'burn');
  await addRole(page, 'flaky');
  await drag(page, 'n3.lab.example', 'flaky');
  const row = noderoles(page, 'flaky', 'proposed').first();
  await row.waitFor();

  await row.locator('[data-action=edit]').click();
  await row.locator('textarea').fill('{"test": {"fail": true}}');
  await row.locator('.editor button[type=submit]').click();
  await row.locator('.message.ok').waitFor();
  await page.click('[data-action=commit]');
  await noderoles(page, 'flaky', 'error').first().waitFor();
  await shot(page, 'deployment-error');
  // Retry from the deployment view: it runs again and, data unchanged, fails again.
  await noderoles(page, 'flaky', 'error').first().locator('[data-action=retry]').click();
  await noderoles(page, 'flaky', 'error').first().locator('[data-action=retry]:not([disabled])').waitFor();

  await noderoles(page, 'flaky').first().locator('a', { hasText: 'details' }).click();
  await page.waitForURL('**/ui/noderoles/*');
  const view = page.locator('article.noderole-view');
  await page.locator('article.noderole-view[data-state=error]').waitFor();
  assert.match(await page.locator('[data-runlog]').innerText(), /fail/);
  await page.evaluate(() => (window.kilnNotReloaded = true));

  // Retry: error -> todo -> transition -> error again (its data still fails).
  await page.locator('tr[data-run][data-state=failed]').nth(1).waitFor();
  await page.click('[data-action=retry]');
  await page.locator('tr[data-run][data-state=failed]').nth(2).waitFor();
  await page.locator('article.noderole-view[data-state=error]').waitFor();
  await shot(page, 'noderole-error');
  await shot(page, 'readme-noderole-error', { x: 0, y: 0, width: 1280, height: 760 });

  // Fix the data: that proposes it again; commit runs it with the new data.
  await view.locator('textarea').fill('{"test": {"fail": false}}');
  await view.locator('.editor button[type=submit]').click();
  await page.locator('article.noderole-view[data-state=proposed]').waitFor();
  await page.click('[data-action=commit]');
  await page.locator('article.noderole-view[data-state=active]').waitFor();
  await page.locator('tr[data-run][data-state=succeeded]').waitFor();
  assert.equal(await page.evaluate(() => window.kilnNotReloaded), true);
  await shot(page, 'noderole-active');
  await page.close();
});

test('bad JSON is refused in the browser, with a message, and nothing is sent', async () => {
  const page = await signedIn('/ui/deployments/burn');
  const row = noderoles(page, 'flaky').first();
  await row.waitFor();
  await row.locator('[data-action=edit]').click();
  const puts = [];
  page.on('request', (r) => {
    if (r.method() === 'PUT') puts.push(r.url());
  });
  const area = row.locator('textarea');
  await area.fill('{"test": {"fail": fals');
  await row.locator('.editor button[type=submit]').click();
  const message = row.locator('[data-editor-message]');
  await message.filter({ hasText: 'Not valid JSON' }).waitFor();
  assert.equal(await area.getAttribute('aria-invalid'), 'true');

  await area.fill('[1, 2]');
  await row.locator('.editor button[type=submit]').click();
  await message.filter({ hasText: 'must be a JSON object' }).waitFor();
  assert.deepEqual(puts, []);
  await shot(page, 'bad-json');

  // Reloading an address shows the same view.
  await page.reload();
  await noderoles(page, 'flaky').first().waitFor();
  await page.close();
});

test('without the event stream the page polls, and states still arrive', async () => {
  const page = await context.newPage();
  await page.route('**/api/v2/events', (route) => route.abort());
  await page.goto('/ui/deployments');
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('#live-status[data-mode=polling]').waitFor();
  await createDeployment(page, 'polled', '<b>markup</b> shown as text');
  // API strings are text, never markup.
  await page.locator('main p', { hasText: '<b>markup</b> shown as text' }).waitFor();
  assert.equal(await page.locator('main b').count(), 0);
  await addRole(page, 'flaky');
  // Bound by name this time (the keyboard's way), not by dragging.
  await page.fill('[data-role=flaky] .bind-by-name input', 'n3.lab.example');
  await page.press('[data-role=flaky] .bind-by-name input', 'Enter');
  await noderoles(page, 'flaky', 'proposed').first().waitFor();
  await page.click('[data-action=commit]');
  await noderoles(page, 'flaky', 'active').first().waitFor();
  await page.close();
});
