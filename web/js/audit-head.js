// The signed audit head (a checkpoint "entry N had hash H at T", signed with the broker's Ed25519 key):
// shown, downloadable byte for byte as the broker sent it (so `npm run audit:verify -- <dir> --head <file>`
// takes the file), and, for platform-admins, a saved head checked against today's log: does the log still
// extend it, and does its signature verify (WebCrypto Ed25519, where the browser has it)?
// @see API.md "Audit"
import { api } from './api.js';
import { busy, h, showError, showMessage } from './dom.js';
import { formatTime, label } from './i18n.js';

const HASH = /^[0-9a-fA-F]{64}$/;

/** A signed head from a file's text (the head JSON, or a usage report carrying `auditHead`); null when it is not one. */
export function parseHead(text) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  const head = parsed && typeof parsed === 'object' && parsed.auditHead && typeof parsed.auditHead === 'object' ? parsed.auditHead : parsed;
  if (!head || typeof head !== 'object') return null;
  const { seq, hash, at, keyId, signature } = head;
  if (!Number.isSafeInteger(seq) || seq < 0 || typeof hash !== 'string' || !HASH.test(hash)) return null;
  if (typeof at !== 'string' || typeof keyId !== 'string' || typeof signature !== 'string') return null;
  return { seq, hash, at, keyId, signature };
}

const base64Bytes = (text) => Uint8Array.from(atob(text.replace(/\s+/g, '')), (c) => c.charCodeAt(0));

/**
 * 'valid' | 'invalid' | 'unsupported' (no WebCrypto here: plain http off localhost, or no Ed25519 in
 * this browser). Never guesses: unsupported is said as such.
 */
export async function checkSignature(head, publicKeyPem) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return 'unsupported';
  let key;
  try {
    const der = base64Bytes(publicKeyPem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, ''));
    key = await subtle.importKey('spki', der, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    if (error?.name === 'NotSupportedError') return 'unsupported';
    throw error;
  }
  let signature;
  try {
    signature = base64Bytes(head.signature);
  } catch {
    return 'invalid';
  }
  const message = new TextEncoder().encode(`${head.seq}\n${head.hash}\n${head.at}`);
  try {
    return (await subtle.verify({ name: 'Ed25519' }, key, signature, message)) ? 'valid' : 'invalid';
  } catch (error) {
    if (error?.name === 'NotSupportedError') return 'unsupported';
    return 'invalid';
  }
}

const shortSignature = (signature) => (signature.length > 20 ? `${signature.slice(0, 20)}…` : signature);

export function auditHeadCard({ me }) {
  const platform = me.role === 'platform-admin';
  const message = h('div', { class: 'message', id: 'audit-head-message', role: 'alert', 'aria-live': 'polite' });
  const values = {
    seq: h('dd', { id: 'audit-head-seq' }),
    at: h('dd', { id: 'audit-head-at' }),
    hash: h('dd', {}, h('code', { id: 'audit-head-hash', class: 'wrap-anywhere' })),
    keyId: h('dd', {}, h('code', { id: 'audit-head-key' })),
    signature: h('dd', {}, h('code', { id: 'audit-head-signature' })),
  };
  const facts = h('dl', { class: 'facts', id: 'audit-head-facts' },
    h('dt', { i18n: 'audit.seq' }), values.seq,
    h('dt', { i18n: 'audit.at' }), values.at,
    h('dt', { i18n: 'auditHead.hash' }), values.hash,
    h('dt', { i18n: 'auditHead.keyId' }), values.keyId,
    h('dt', { i18n: 'auditHead.signature' }), values.signature);
  /** The head exactly as the broker sent it (the text), and parsed. */
  let current = null;

  function render() {
    const head = current?.head;
    values.seq.textContent = head ? String(head.seq) : '';
    values.at.textContent = head ? formatTime(head.at) : '';
    if (head) values.at.title = head.at;
    values.hash.firstChild.textContent = head?.hash ?? '';
    values.keyId.firstChild.textContent = head?.keyId ?? '';
    values.signature.firstChild.textContent = head ? shortSignature(head.signature) : '';
    if (head) values.signature.firstChild.title = head.signature;
    download.disabled = !head;
  }

  async function load() {
    showMessage(message);
    try {
      const text = await api('GET', '/audit/head', { raw: true });
      current = { text, head: JSON.parse(text) };
      render();
    } catch (error) {
      showError(message, error);
    }
  }

  // The file is the broker's own bytes: re-serializing could reorder or reformat what the CLI reads.
  const download = h('button', {
    type: 'button', class: 'btn', id: 'audit-head-download', i18n: 'auditHead.download', disabled: true,
    onclick: () => {
      if (!current) return;
      const url = URL.createObjectURL(new Blob([current.text], { type: 'application/json' }));
      const link = h('a', { href: url, download: `sharp-eyes-audit-head-${current.head.seq}.json`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    },
  });
  const refresh = h('button', {
    type: 'button', class: 'btn', id: 'audit-head-refresh', i18n: 'auditHead.refresh',
    onclick: (e) => busy(e.currentTarget, load),
  });

  const verifier = platform ? headVerifier() : null;
  const el = h('div', { class: 'card', id: 'audit-head' },
    h('div', { class: 'card-head' }, h('h2', { i18n: 'auditHead.title' }), h('div', { class: 'actions' }, refresh, download)),
    h('p', { class: 'hint', i18n: 'auditHead.explain' }),
    message,
    facts,
    verifier?.el);
  return { el, load };
}

/** The platform-admin's check of a saved head: a file picked, read here, verified against the live log. */
function headVerifier() {
  const input = h('input', { type: 'file', id: 'audit-head-file', accept: '.json,application/json' });
  const result = h('div', { id: 'audit-head-verdict', class: 'verdict' });
  const extension = h('div', { class: 'message wrap-anywhere', id: 'audit-head-extends', role: 'status' });
  const chain = h('div', { class: 'message', id: 'audit-head-chain', role: 'status' });
  const signature = h('div', { class: 'message', id: 'audit-head-signature-check', role: 'status' });
  const picked = h('p', { class: 'hint', id: 'audit-head-file-name' });
  result.append(picked, extension, chain, signature);

  async function verify(file) {
    for (const area of [extension, chain, signature]) showMessage(area);
    picked.textContent = '';
    delete signature.dataset.outcome;
    result.dataset.verdict = 'pending';
    const head = parseHead(await file.text());
    label(picked, 'auditHead.checking', { file: file.name });
    if (!head) {
      showMessage(extension, 'error', 'auditHead.notAHead');
      result.dataset.verdict = 'invalid';
      return;
    }
    try {
      const answer = await api('GET', `/audit/verify?seq=${head.seq}&hash=${encodeURIComponent(head.hash.toLowerCase())}`);
      // The whole hash: a changed head may differ from the log's entry in its last digit only.
      const args = { seq: head.seq, hash: head.hash.toLowerCase(), entries: answer.entries };
      if (answer.extends) showMessage(extension, 'ok', 'auditHead.extends', args);
      else if (answer.entries < head.seq) showMessage(extension, 'error', 'auditHead.cut', args);
      else showMessage(extension, 'error', 'auditHead.changed', args);
      if (!answer.ok) showMessage(chain, 'error', 'audit.verifyBad', { entries: answer.entries, seq: answer.firstBadSeq });
      result.dataset.verdict = answer.extends && answer.ok ? 'extends' : 'broken';
    } catch (error) {
      showError(extension, error);
      result.dataset.verdict = 'error';
    }
    try {
      const { keyId, publicKeyPem } = await api('GET', '/audit/public-key');
      const outcome = await checkSignature(head, publicKeyPem);
      const args = { keyId, headKeyId: head.keyId };
      if (outcome === 'unsupported') showMessage(signature, 'info', 'auditHead.signatureUnsupported', args);
      else if (outcome === 'valid') showMessage(signature, 'ok', 'auditHead.signatureValid', args);
      else showMessage(signature, 'error', head.keyId === keyId ? 'auditHead.signatureInvalid' : 'auditHead.signatureOtherKey', args);
      signature.dataset.outcome = outcome;
    } catch (error) {
      showError(signature, error);
      signature.dataset.outcome = 'error';
    }
  }

  input.addEventListener('change', () => {
    const file = input.files?.[0];
    if (!file) return;
    input.disabled = true;
    verify(file)
      .catch((error) => showError(extension, error))
      .finally(() => {
        input.disabled = false;
        input.value = '';
      });
  });

  const el = h('div', { class: 'head-verify' },
    h('h3', { i18n: 'auditHead.verifyTitle' }),
    h('div', { class: 'field' }, h('label', { for: 'audit-head-file', i18n: 'auditHead.pick' }), input),
    result);
  return { el };
}
