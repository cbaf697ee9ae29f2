/*
 * sound.js - the call sounds, generated with Web Audio (no files): a ringtone for an incoming call
 * and a ringback tone for the caller. Imported by web/app.js, which calls play('ringtone' |
 * 'ringback' | null) whenever the call's view changes, so every way a ring ends stops it.
 *
 * Browsers let a page start audio only after a user gesture (autoplay rules): until one happened
 * the AudioContext is "suspended", `blocked` is true and onchange lets the page offer "click to
 * enable sound"; unlock() (from a click or key press) resumes it. `state` is what should be
 * heard, `audible` whether the context runs, so tests can observe both.
 */

const PATTERNS = {
  // two-tone burst twice, then a pause (a phone's ring)
  ringtone: { freqs: [880, 1100], bursts: [[0, 0.4], [0.6, 0.4]], period: 3 },
  // the ringback the caller hears (ITU-T E.180 style: 425 Hz, 1 s on, 4 s off)
  ringback: { freqs: [425], bursts: [[0, 1]], period: 5 },
};

export function createSound() {
  const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
  let ctx = null;
  let loop = null; // interval of the current pattern
  let nodes = []; // oscillators scheduled for the current pattern and not ended yet
  let scheduled = 0; // oscillators scheduled since the current pattern started
  const sound = { state: null, blocked: false, audible: false, onchange: null };

  function changed() {
    sound.audible = Boolean(ctx && ctx.state === 'running');
    sound.blocked = Boolean(sound.state && ctx && ctx.state !== 'running');
    if (sound.onchange) sound.onchange(sound);
  }

  function context() {
    if (!ctx && Ctx) {
      ctx = new Ctx();
      ctx.onstatechange = changed;
    }
    return ctx;
  }

  function schedule(p) {
    const c = context();
    if (!c || c.state !== 'running') return;
    const t0 = c.currentTime + 0.05;
    for (const [at, len] of p.bursts) {
      const gain = c.createGain();
      gain.gain.setValueAtTime(0, t0 + at);
      gain.gain.linearRampToValueAtTime(0.12 / p.freqs.length, t0 + at + 0.02);
      gain.gain.setValueAtTime(0.12 / p.freqs.length, t0 + at + len - 0.02);
      gain.gain.linearRampToValueAtTime(0, t0 + at + len);
      gain.connect(c.destination);
      for (const f of p.freqs) {
        const o = c.createOscillator();
        o.frequency.value = f;
        o.connect(gain);
        o.start(t0 + at);
        o.stop(t0 + at + len);
        nodes.push(o);
        scheduled++;
        o.onended = () => {
          nodes = nodes.filter((n) => n !== o);
        };
      }
    }
  }

  function stopNodes() {
    clearInterval(loop);
    loop = null;
    for (const o of nodes) {
      try {
        o.stop();
      } catch (e) { /* already stopped */ }
    }
    nodes = [];
  }

  /** Plays a pattern in a loop ('ringtone' | 'ringback'), or stops with null. */
  sound.play = (name) => {
    const p = name ? PATTERNS[name] : null;
    if ((p ? name : null) === sound.state) return;
    stopNodes();
    scheduled = 0;
    sound.state = p ? name : null;
    if (p) {
      const c = context();
      if (c && c.state === 'suspended') c.resume().catch(() => {}); // allowed after a gesture
      schedule(p);
      loop = setInterval(() => schedule(p), p.period * 1000);
    }
    changed();
  };

  /** From a user gesture: lets audio start, and starts the pattern asked for from its beginning
   *  (so the click is answered by the ring at once, not at the pattern's next period). */
  sound.unlock = () => {
    const c = context();
    if (!c) return Promise.resolve();
    const wasBlocked = c.state !== 'running';
    return c.resume().then(() => {
      if (sound.state && wasBlocked) {
        const name = sound.state;
        sound.state = null;
        sound.play(name);
      }
      changed();
    }).catch(() => changed());
  };

  /** The AudioContext, once created (for debugging and tests), or null. */
  sound.audioContext = () => ctx;

  /** Tone generators not ended yet (0 once stopped; also 0 in the pauses of a pattern). */
  sound.activeNodes = () => nodes.length;
  /** Tone generators scheduled since the current pattern started (grows while it plays). */
  sound.scheduledCount = () => scheduled;
  return sound;
}
