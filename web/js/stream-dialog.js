// "Request a stream": the purpose (required, 4..200 characters: who uses, who is responsible), an
// optional priority and queue wait. A full forwarding pool offers to queue for 30 s. An H.265 camera this
// browser cannot decode is asked for as H.264 (codec.js).
// @see API.md "Streams (forwarding slots)"
import { api, idempotencyKey } from './api.js';
import { codecRequestFor } from './codec.js';
import { showError, showMessage } from './dom.js';
import { label } from './i18n.js';

const PURPOSE = { min: 4, max: 200 };
const QUEUE_SECONDS = 30;

export function streamDialog({ onGranted, canPreempt }) {
  const dialog = document.getElementById('stream-dialog');
  const form = document.getElementById('stream-form');
  const channelLine = document.getElementById('stream-channel');
  const purpose = document.getElementById('stream-purpose');
  const priority = document.getElementById('stream-priority');
  const wait = document.getElementById('stream-wait');
  const message = document.getElementById('stream-message');
  const submit = document.getElementById('stream-submit');
  const queue = document.getElementById('stream-queue');
  const cancel = document.getElementById('stream-cancel');
  let channel = null;
  let pending = null;

  async function request(waitSeconds) {
    const text = purpose.value.trim();
    if (text.length < PURPOSE.min || text.length > PURPOSE.max) {
      purpose.setAttribute('aria-invalid', 'true');
      showMessage(message, 'error', 'stream.purposeInvalid', PURPOSE);
      purpose.focus();
      return;
    }
    purpose.removeAttribute('aria-invalid');
    queue.hidden = true;
    submit.disabled = true;
    pending = new AbortController();
    showMessage(message, 'info', waitSeconds > 0 ? 'stream.queued' : 'stream.requesting', { seconds: waitSeconds });
    try {
      const codec = codecRequestFor(channel);
      const session = await api('POST', '/streams', {
        body: { channelId: channel.id, purpose: text, priority: priority.value, ...(waitSeconds > 0 && { waitSeconds }), ...(codec && { codec }) },
        headers: { 'idempotency-key': idempotencyKey() },
        signal: pending.signal,
      });
      dialog.close();
      onGranted(session, channel);
    } catch (error) {
      if (error.name === 'AbortError') return;
      showError(message, error);
      if (error.code === 'FORWARDING_CAPACITY_EXHAUSTED') queue.hidden = false;
    } finally {
      pending = null;
      submit.disabled = false;
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const seconds = Math.trunc(Number(wait.value) || 0);
    if (seconds < 0 || seconds > 30) {
      showMessage(message, 'error', 'stream.waitInvalid');
      return;
    }
    request(seconds);
  });
  queue.addEventListener('click', () => request(QUEUE_SECONDS));
  // Closing the dialog while queued leaves the queue: the broker drops a request whose client went away.
  cancel.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => pending?.abort());

  return {
    open(target) {
      channel = target;
      channelLine.textContent = `${target.name} · ${target.id}`;
      showMessage(message);
      queue.hidden = true;
      purpose.removeAttribute('aria-invalid');
      wait.value = '0';
      priority.value = 'normal';
      const emergency = priority.querySelector('option[value="emergency"]');
      emergency.disabled = !canPreempt();
      label(emergency, canPreempt() ? 'priority.emergency' : 'priority.emergencyDenied');
      dialog.showModal();
      purpose.focus();
    },
  };
}
