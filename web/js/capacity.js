// Capacity gauges: the city's forwarding pool (used / limit, queued), the analytics pool and, for
// agency users, their own agency's quotas. Fed by LiveFeed (events or polling).
import { h } from './dom.js';
import { label } from './i18n.js';

function gauge(id, titleKey) {
  const fill = h('div', { class: 'gauge-fill' });
  const figures = h('span', { class: 'gauge-figures' });
  const extra = h('span', { class: 'gauge-extra' });
  const bar = h('div', { class: 'gauge-bar', role: 'meter', 'aria-valuemin': 0, 'i18n-aria-label': titleKey }, fill);
  const el = h('div', { class: 'gauge', id }, h('div', { class: 'gauge-head' }, h('span', { class: 'gauge-title', i18n: titleKey }), figures), bar, extra);
  return {
    el,
    set(used, limit, extraKey, extraArgs) {
      const ratio = limit > 0 ? Math.min(1, used / limit) : used > 0 ? 1 : 0;
      fill.style.width = `${(ratio * 100).toFixed(1)}%`;
      el.classList.toggle('warn', ratio >= 0.8 && ratio < 1);
      el.classList.toggle('full', ratio >= 1);
      bar.setAttribute('aria-valuenow', String(used));
      bar.setAttribute('aria-valuemax', String(limit));
      figures.textContent = `${used.toLocaleString()} / ${limit.toLocaleString()}`;
      if (extraKey) label(extra, extraKey, extraArgs);
      else extra.replaceChildren();
    },
  };
}

export class CapacityGauges {
  constructor(container, statusArea) {
    this.statusArea = statusArea;
    this.forwarding = gauge('gauge-forwarding', 'capacity.forwarding');
    this.analytics = gauge('gauge-analytics', 'capacity.analytics');
    this.agencyForwarding = gauge('gauge-agency-forwarding', 'capacity.agencyForwarding');
    this.agencyAnalytics = gauge('gauge-agency-analytics', 'capacity.agencyAnalytics');
    container.replaceChildren(this.forwarding.el, this.analytics.el, this.agencyForwarding.el, this.agencyAnalytics.el);
    this.agencies = [];
  }

  /** A GET /capacity answer or a `capacity` event (which has no agencies: keep the last known). */
  update(capacity, ownAgencyId) {
    if (capacity.agencies) this.agencies = capacity.agencies;
    const { forwarding, analytics } = capacity;
    this.forwarding.set(forwarding.used, forwarding.limit, 'capacity.queued', { n: forwarding.queued ?? 0 });
    this.analytics.set(analytics.used, analytics.limit);
    const own = this.agencies.find((a) => a.id === ownAgencyId);
    this.agencyForwarding.el.hidden = !own;
    this.agencyAnalytics.el.hidden = !own;
    if (own) {
      this.agencyForwarding.set(own.forwarding.used, own.forwarding.quota, 'capacity.ownAgency', { id: ownAgencyId });
      this.agencyAnalytics.set(own.analytics.used, own.analytics.quota, 'capacity.ownAgency', { id: ownAgencyId });
    }
  }

  mode(mode) {
    this.statusArea.className = `live-status ${mode}`;
    label(this.statusArea, `live.${mode}`);
  }
}
