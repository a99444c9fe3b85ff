/**
 * Debian Chromium driven by playwright-core for the console's browser tests: one profile per test,
 * uncaught page errors and CSP violations collected (they are console defects whatever the screen
 * shows), screenshots under test-output/screens/, and signing in from a fresh page load.
 */
import type { Test } from 'tap';
import { mkdir } from 'node:fs/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { makeTempDir } from '../helper.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENS = 'test-output/screens';

export async function openBrowser(t: Test, options: { acceptDownloads?: boolean } = {}): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }> {
  const userDataDir = await makeTempDir(t, 'se-chromium-');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1400, height: 900 },
    locale: 'zh-CN',
    acceptDownloads: options.acceptDownloads ?? false,
  });
  t.teardown(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) pageErrors.push(message.text());
  });
  await mkdir(SCREENS, { recursive: true });
  return { context, page, pageErrors };
}

/**
 * A full-page PNG of a screen under test-output/screens/, for people reviewing the console: with
 * TEST_SCREENSHOTS=1 only, since encoding them cost CI seconds of CPU and nobody looks at them there.
 */
export const screenshot = async (page: Page, name: string): Promise<void> => {
  if (process.env.TEST_SCREENSHOTS !== '1') return;
  await page.screenshot({ path: `${SCREENS}/${name}.png`, fullPage: true });
};

/** Signs in from a fresh page load, so one failed step does not leave the next user signed in as someone else. */
export async function signIn(page: Page, base: string, username: string, password: string) {
  await page.goto(base);
  await page.evaluate('sessionStorage.clear()');
  await page.reload();
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector('#console-screen:not([hidden])');
}

/**
 * Stops the page's (first) player and returns the status of the lease release it sent. The page drops
 * the player at once and releases after, so a check of the broker must wait for the release, not the DOM.
 */
export async function stopPlayer(page: Page): Promise<number> {
  const released = page.waitForResponse((response) => response.request().method() === 'DELETE' && /\/api\/v1\/streams\/[^/]+$/.test(new URL(response.url()).pathname));
  await page.click('#players article button.btn-danger');
  await page.waitForSelector('#players article', { state: 'detached' });
  return (await released).status();
}
