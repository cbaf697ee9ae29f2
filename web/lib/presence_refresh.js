/*
 * presence_refresh.js - PURE timing of the presence lease's refresh: when this page publishes
 * its retained presence again. The service takes a device that refreshed once and then stayed
 * silent for 2.5 x PRESENCE_REFRESH_S as offline (docs/mqtt.md#presence-protocol); GET /config
 * gives the period as presenceRefreshS. Used by web/lib/mqtt_link.js; tested by
 * web/test/presence_refresh.test.js. No clock, no randomness: both are arguments.
 */

export const MIN_DELAY_MS = 100; // never a busy loop, whatever the setting

/** The period in seconds from GET /config's presenceRefreshS: a positive finite number, or 0
 *  (no refresh) for anything else. */
export function refreshPeriodS(value) {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/**
 * Milliseconds from now until the next refresh, or null when there is none to schedule (no
 * period, nothing published yet). The refresh falls between 3/4 of the period and the whole
 * period after the last publication (random in [0, 1) picks where), so pages that reconnected
 * together after a broker restart spread out, and no gap between two publications exceeds the
 * period. Any publication (a busy change, a reconnect) counts: the next refresh is timed from
 * it. A timer that fired late (a throttled background tab) gets MIN_DELAY_MS: refresh at once.
 */
export function refreshDelayMs(periodS, lastPublishedAt, now, random) {
  const period = refreshPeriodS(periodS) * 1000;
  if (!period || typeof lastPublishedAt !== 'number') return null;
  const r = Math.min(Math.max(Number(random) || 0, 0), 1);
  const due = lastPublishedAt + period * (0.75 + 0.25 * r);
  return Math.max(MIN_DELAY_MS, Math.round(due - now));
}
