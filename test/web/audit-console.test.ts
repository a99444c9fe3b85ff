/**
 * Issue 9, item 4: the console's audit view in a real browser (Debian chromium, playwright-core) against a
 * real broker. The view filters to the player records (play.start / play.end / play.refused); it shows the
 * signed head and downloads it byte for byte as GET /audit/head sent it, so the file verifies with
 * node:crypto and `npm run audit:verify -- <dir> --head <file>`; a platform admin checks a saved head
 * against the live log ("extends" after more actions; a changed hash or a seq past the end is named as a
 * change or a cut, and its signature fails). An agency admin sees and downloads the head, without the
 * verify action. A browser without WebCrypto says the signature was not checked. Screens land in
 * test-output/screens/.
 * @see ../../../shared/API.md "Audit"
 */
import t, { type Test } from 'tap';
import { createPublicKey, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openBrowser, screenshot, signIn } from './browser.js';
import { auth, buildTestBroker, runScript, until, type TestBroker } from '../helper.js';

const AGENCY = 'ui-audit';
const PASSWORDS = { admin: 'admin-pass-0123', operator: 'operator-pass-0123' };

interface Head {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  signature: string;
}

async function startBroker(t: Test) {
  const tb = await buildTestBroker(t, { start: true });
  const created = await tb.app.inject({
    method: 'POST',
    url: '/api/v1/agencies',
    headers: auth(tb.adminToken),
    payload: { id: AGENCY, name: '审计界面测试局', networks: ['video'], classes: [1, 2, 3], quotas: { forwarding: 5, analytics: 2 } },
  });
  t.equal(created.statusCode, 201, 'agency created');
  const ids: Record<string, string> = {};
  for (const role of ['admin', 'operator'] as const) {
    const res = await tb.app.inject({
      method: 'POST',
      url: `/api/v1/agencies/${AGENCY}/users`,
      headers: auth(tb.adminToken),
      payload: { username: `audit.${role}`, password: PASSWORDS[role], role },
    });
    t.equal(res.statusCode, 201, `${role} created`);
    ids[role] = res.json().id;
  }
  await tb.app.listen({ port: 0, host: '127.0.0.1' });
  const address = tb.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no listening address');
  return { tb, base: `http://127.0.0.1:${address.port}`, operatorId: ids.operator! };
}

async function signOut(page: Page) {
  await page.click('#logout');
  await page.waitForSelector('#login-screen:not([hidden])');
}

/** Waits until the action column of the audit list satisfies `condition` (the page's CSP forbids string predicates). */
const actionsShown = (t: Test, page: Page, condition: (actions: string[]) => boolean) =>
  until(t, 'the audit list to show the filtered actions', async () => condition(await page.locator('#audit-list tbody tr td:nth-child(4)').allTextContents()), 15_000);

/** The agency's check: Ed25519 over `${seq}\n${hash}\n${at}` with the published key. */
const headVerifies = (head: Head, publicKeyPem: string) =>
  verify(null, Buffer.from(`${head.seq}\n${head.hash}\n${head.at}`, 'utf8'), createPublicKey(publicKeyPem), Buffer.from(head.signature, 'base64'));

/**
 * Player records as the media plane writes them (the other item of issue 9): start, end and, the first
 * time, one refused (a repeated denial within a minute is coalesced into a later summary entry).
 */
async function recordPlays(tb: TestBroker, operatorId: string, { refused = true } = {}) {
  const actor = { id: operatorId, role: 'operator' as const, agencyId: AGENCY };
  const common = { agencyId: AGENCY, sessionId: 'ses-ui-audit', channelId: '44010600001320000001', address: '10.20.30.40', userAgent: 'ui-test' };
  await tb.broker.audit.record(
    { actor, action: 'play.start', target: 'ses-ui-audit', outcome: 'ok', details: { ...common } },
    ...(refused ? [{ actor, action: 'play.refused', target: 'ses-ui-audit', outcome: 'denied' as const, reason: 'player limit', details: { ...common, address: '10.99.99.99' } }] : []),
    { actor, action: 'play.end', target: 'ses-ui-audit', outcome: 'ok', details: { ...common, bytes: 123456, seconds: 42 } },
  );
}

/** Picks a file in the saved-head input and waits for the page's verdict on it and on its signature. */
async function checkHeadFile(page: Page, file: string): Promise<{ verdict: string | null; extension: string; signature: string | null; signatureText: string }> {
  await page.setInputFiles('#audit-head-file', file);
  await page.waitForSelector('#audit-head-verdict:not([data-verdict="pending"])[data-verdict]');
  await page.waitForSelector('#audit-head-signature-check[data-outcome]');
  return {
    verdict: await page.getAttribute('#audit-head-verdict', 'data-verdict'),
    extension: (await page.textContent('#audit-head-extends')) ?? '',
    signature: await page.getAttribute('#audit-head-signature-check', 'data-outcome'),
    signatureText: (await page.textContent('#audit-head-signature-check')) ?? '',
  };
}

t.test('the audit view: play events, the signed head downloaded and verified, by role', async (t) => {
  const { tb, base, operatorId } = await startBroker(t);
  await recordPlays(tb, operatorId);
  const { page, pageErrors } = await openBrowser(t, { acceptDownloads: true });
  const keep = t.testdir();
  const getHead = () => tb.app.inject({ url: '/api/v1/audit/head', headers: auth(tb.adminToken) });
  const { publicKeyPem } = (await tb.app.inject({ url: '/api/v1/audit/public-key', headers: auth(tb.adminToken) })).json();
  let savedFile = '';
  let saved: Head | undefined;

  await t.test('the platform admin filters to play events', async (t) => {
    await signIn(page, base, 'admin', tb.adminPassword);
    await page.click('#tab-audit');
    await page.waitForSelector('#audit-list tbody tr td:not(.empty)');
    await page.selectOption('#audit-events', 'play.*');
    await actionsShown(t, page, (actions) => actions.length > 0 && actions.every((a) => a.startsWith('play.')));
    const actions = await page.locator('#audit-list tbody tr td:nth-child(4)').allTextContents();
    t.same(actions, ['play.end', 'play.refused', 'play.start'], 'every play record, newest first, and nothing else');
    t.equal(await page.inputValue('#audit-action'), 'play.*', 'the preset fills the action filter');
    t.match(await page.textContent('#audit-list tbody tr:first-child'), /address=10\.20\.30\.40.*bytes=123456.*seconds=42/, 'the details show address, bytes and seconds');
    await screenshot(page, 'audit-01-play-events');

    await page.selectOption('#audit-events', 'play.refused');
    await actionsShown(t, page, (actions) => actions.length === 1 && actions[0] === 'play.refused');
    t.match(await page.textContent('#audit-list tbody tr'), '10.99.99.99', 'the refused player’s address');
    await page.selectOption('#audit-events', '');
    await actionsShown(t, page, (actions) => actions.some((a) => !a.startsWith('play.')));
  });

  await t.test('the platform admin sees the signed head and downloads exactly what the API signed', async (t) => {
    await page.waitForSelector('#audit-head-download:not([disabled])');
    const api = await getHead();
    t.equal(api.statusCode, 200);
    const head: Head = api.json();
    t.equal(await page.textContent('#audit-head-seq'), String(head.seq), 'the seq shown is the head’s');
    t.equal(await page.textContent('#audit-head-hash'), head.hash);
    t.equal(await page.textContent('#audit-head-key'), head.keyId);
    t.equal(await page.getAttribute('#audit-head-signature', 'title'), head.signature, 'the whole signature on hover');
    t.ok(head.signature.startsWith((await page.textContent('#audit-head-signature'))!.replace('…', '')), 'a short signature shown');
    await screenshot(page, 'audit-02-head');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-head-download')]);
    t.match(download.suggestedFilename(), /^sharp-eyes-audit-head-\d+\.json$/);
    savedFile = path.join(keep, download.suggestedFilename());
    await download.saveAs(savedFile);
    const text = await readFile(savedFile, 'utf8');
    t.equal(text, api.body, 'the file is byte for byte the JSON GET /audit/head answered');
    saved = JSON.parse(text) as Head;
    t.same(saved, head);
    t.ok(headVerifies(saved, publicKeyPem), 'its signature verifies with node:crypto and /audit/public-key');

    const cli = await runScript('src/cli/audit-verify.ts', [tb.dataDir, '--head', savedFile]);
    t.equal(cli.code, 0, `npm run audit:verify -- <dir> --head <file> accepts it (${cli.stdout}${cli.stderr})`);
    t.match(cli.stdout, `verdict: ok (kept head seq ${head.seq})`);
  });

  await t.test('after more actions the saved head is still extended; a changed or cut one is named', async (t) => {
    if (!saved) return t.fail('no saved head');
    await recordPlays(tb, operatorId, { refused: false });
    const created = await tb.app.inject({
      method: 'POST', url: `/api/v1/agencies/${AGENCY}/users`, headers: auth(tb.adminToken),
      payload: { username: 'audit.later', password: 'later-pass-0123', role: 'operator' },
    });
    t.equal(created.statusCode, 201);
    t.ok((await getHead()).json().seq > saved.seq, 'the log moved on');

    const intact = await checkHeadFile(page, savedFile);
    t.equal(intact.verdict, 'extends');
    t.match(intact.extension, `日志仍延续该日志头:第 ${saved.seq} 条`);
    t.equal(intact.signature, 'valid', 'Chromium checks the Ed25519 signature with WebCrypto');
    t.match(intact.signatureText, '签名有效');
    await screenshot(page, 'audit-03-verify-extends');

    // One hex digit of the hash changed: the log no longer holds it, and the signature no longer covers it.
    const flipped = saved.hash.slice(0, -1) + (saved.hash.endsWith('0') ? '1' : '0');
    const tamperedFile = path.join(keep, 'tampered-head.json');
    await writeFile(tamperedFile, JSON.stringify({ ...saved, hash: flipped }));
    const changed = await checkHeadFile(page, tamperedFile);
    t.equal(changed.verdict, 'broken');
    t.match(changed.extension, `日志在第 ${saved.seq} 条处被篡改:第 ${saved.seq} 条的哈希已不是保存的 ${flipped}`);
    t.equal(changed.signature, 'invalid');
    t.match(changed.signatureText, '签名无效');
    const api = (await tb.app.inject({ url: `/api/v1/audit/verify?seq=${saved.seq}&hash=${flipped}`, headers: auth(tb.adminToken) })).json();
    t.equal(api.extends, false, 'the API agrees');
    await screenshot(page, 'audit-04-verify-changed');

    // A head past the end of the log: what a cut log looks like to a kept head.
    const entries = (await tb.app.inject({ url: '/api/v1/audit/verify', headers: auth(tb.adminToken) })).json().entries as number;
    const cutFile = path.join(keep, 'beyond-head.json');
    await writeFile(cutFile, JSON.stringify({ ...saved, seq: entries + 10 }));
    const cut = await checkHeadFile(page, cutFile);
    t.equal(cut.verdict, 'broken');
    t.match(cut.extension, `日志在第 ${entries + 10} 条处被截断`);
    t.equal(cut.signature, 'invalid');
    await screenshot(page, 'audit-04b-verify-cut');

    const junkFile = path.join(keep, 'not-a-head.json');
    await writeFile(junkFile, '{"hello": "world"}');
    await page.setInputFiles('#audit-head-file', junkFile);
    await page.waitForSelector('#audit-head-verdict[data-verdict="invalid"]');
    t.match(await page.textContent('#audit-head-extends'), '不是已签名的审计日志头', 'a file that is not a head is said to be none');
    t.equal(await page.getAttribute('#audit-head-signature-check', 'data-outcome'), null, 'and no signature is claimed for it');

    await checkHeadFile(page, tamperedFile);
    await page.click('#lang-switch');
    t.match(await page.textContent('#audit-head-extends'), `The log was CHANGED at seq ${saved.seq}`);
    t.match(await page.textContent('#audit-head-signature-check'), 'Signature INVALID');
    t.equal(await page.textContent('#audit-head-download'), 'Download head');
    await screenshot(page, 'audit-05-verify-changed-en');
    await page.click('#lang-switch');
    await signOut(page);
  });

  await t.test('an agency admin sees and downloads the head, without the verify action', async (t) => {
    await signIn(page, base, 'audit.admin', PASSWORDS.admin);
    await page.click('#tab-audit');
    await page.waitForSelector('#audit-head-download:not([disabled])');
    const head: Head = (await getHead()).json();
    t.equal(await page.textContent('#audit-head-seq'), String(head.seq));
    t.equal(await page.locator('#audit-head-file').count(), 0, 'no saved-head verification');
    t.equal(await page.locator('#audit-verify').count(), 0, 'no chain verification');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-head-download')]);
    const file = path.join(keep, 'agency-head.json');
    await download.saveAs(file);
    t.ok(headVerifies(JSON.parse(await readFile(file, 'utf8')) as Head, publicKeyPem), 'the agency’s downloaded head verifies');
    await page.selectOption('#audit-events', 'play.*');
    await actionsShown(t, page, (actions) => actions.length === 5 && actions.every((a) => a.startsWith('play.')));
    await screenshot(page, 'audit-06-agency-admin');
    await signOut(page);

    await signIn(page, base, 'audit.operator', PASSWORDS.operator);
    await page.click('#tab-audit');
    await page.waitForSelector('#audit-list table');
    t.equal(await page.locator('#audit-head').count(), 0, 'operators see no head (the API refuses them)');
    await signOut(page);
  });

  t.same(pageErrors, [], 'no uncaught errors or CSP violations in the page');
});

t.test('a browser without WebCrypto says the signature was not checked, and still checks the log', async (t) => {
  const { tb, base } = await startBroker(t);
  const { page, pageErrors } = await openBrowser(t, { acceptDownloads: true });
  // What a console on plain http (an agency LAN, not localhost) has: no crypto.subtle.
  await page.addInitScript('Object.defineProperty(globalThis.crypto, "subtle", { value: undefined })');
  const head = await tb.app.inject({ url: '/api/v1/audit/head', headers: auth(tb.adminToken) });
  const file = path.join(t.testdir(), 'head.json');
  await writeFile(file, head.body);
  await signIn(page, base, 'admin', tb.adminPassword);
  await page.click('#tab-audit');
  const checked = await checkHeadFile(page, file);
  t.equal(checked.verdict, 'extends');
  t.equal(checked.signature, 'unsupported', 'not faked as valid');
  t.match(checked.signatureText, '签名未校验');
  await screenshot(page, 'audit-07-no-webcrypto');
  t.same(pageErrors, []);
});
