/*
 * media.js - camera, microphone and the LiveKit room of a live call (global LivekitClient,
 * vendor/livekit-client.umd.js). Imported by web/app.js, which calls join() when its call goes
 * live and leave() when it is not live any more; everything else here is driven by the person's
 * clicks on the device pickers, the preview and the mute buttons.
 *
 * Status (onStatus(state, text)): token | connecting | connected | reconnecting | unconfigured |
 * unreachable | failed | idle. The pickers list the devices the browser reports (labels appear
 * once the person allowed the camera and microphone, e.g. after the preview); the choice, and
 * "audio only", are used when joining and switch the live call's devices at once.
 */

const $ = (id) => document.getElementById(id);

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  })]).finally(() => clearTimeout(t));
}

export function createMedia({ notify, onStatus }) {
  let room = null;
  let generation = 0; // bumped by leave(): a join() still in flight then gives up
  let previewStream = null;
  const muted = { mic: false, cam: false };
  const m = { room: () => room };

  function status(state, text) {
    $('media').dataset.state = state;
    onStatus(state, text);
  }

  function choice() {
    return { cam: $('cam-select').value || undefined, mic: $('mic-select').value || undefined,
             audioOnly: $('audio-only').checked };
  }

  /** Fills the two pickers from navigator.mediaDevices, keeping the current choice. */
  m.refreshDevices = async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [kind, id, word] of [['videoinput', 'cam-select', 'Camera'], ['audioinput', 'mic-select', 'Microphone']]) {
      const sel = $(id);
      const keep = sel.value;
      const list = devices.filter((d) => d.kind === kind);
      sel.replaceChildren(...list.map((d, i) => {
        const o = document.createElement('option');
        o.value = d.deviceId;
        o.textContent = d.label || `${word} ${i + 1}`;
        return o;
      }));
      if (list.some((d) => d.deviceId === keep)) sel.value = keep;
      sel.disabled = list.length === 0;
    }
    $('devices').dataset.count = String(devices.filter((d) => d.kind !== 'audiooutput').length);
  };

  /** Shows (or stops) the local camera and microphone with the picked devices. */
  m.preview = async (on) => {
    if (previewStream) previewStream.getTracks().forEach((t) => t.stop());
    previewStream = null;
    $('preview').srcObject = null;
    $('devices').dataset.preview = 'off';
    $('preview-toggle').textContent = 'Preview camera and microphone';
    $('preview-toggle').setAttribute('aria-pressed', 'false');
    if (!on) return;
    const c = choice();
    try {
      previewStream = await navigator.mediaDevices.getUserMedia({
        audio: c.mic ? { deviceId: { exact: c.mic } } : true,
        video: c.audioOnly ? false : (c.cam ? { deviceId: { exact: c.cam } } : true),
      });
    } catch (e) {
      notify(`Camera or microphone unavailable: ${e.message}`, 'warn');
      return;
    }
    $('preview').srcObject = previewStream;
    $('devices').dataset.preview = 'on';
    $('preview-toggle').textContent = 'Stop preview';
    $('preview-toggle').setAttribute('aria-pressed', 'true');
    await m.refreshDevices();
  };

  m.previewing = () => previewStream !== null;

  /** The picked device of kind 'cam' | 'mic' changed: use it in the live call too. */
  m.switchDevice = async (kind) => {
    if (previewStream) await m.preview(true);
    if (!room) return;
    const id = $(kind === 'cam' ? 'cam-select' : 'mic-select').value;
    try {
      await room.switchActiveDevice(kind === 'cam' ? 'videoinput' : 'audioinput', id);
    } catch (e) {
      notify(`Could not switch the ${kind === 'cam' ? 'camera' : 'microphone'}: ${e.message}`);
    }
  };

  /** Joins the call's LiveKit room with the token; returns when connected or failed. */
  m.join = async (url, token, peerName) => {
    const gen = ++generation;
    if (!url) {
      status('unconfigured', 'No LiveKit server configured: the call is connected, but without audio or video.');
      return;
    }
    const LK = globalThis.LivekitClient;
    if (!LK || !LK.Room) {
      status('failed', 'The LiveKit library is missing (web/vendor/livekit-client.umd.js): run scripts/bootstrap.');
      return;
    }
    await m.preview(false); // the call takes the devices
    status('connecting', `Connecting to the LiveKit server at ${url}\u2026`);
    const c = choice();
    const r = new LK.Room({ adaptiveStream: true, dynacast: true,
                            videoCaptureDefaults: c.cam ? { deviceId: c.cam } : undefined,
                            audioCaptureDefaults: c.mic ? { deviceId: c.mic } : undefined });
    room = r;
    const remote = $('remote-media');
    r.on(LK.RoomEvent.TrackSubscribed, (track) => {
      const media = track.attach();
      media.dataset.kind = track.kind;
      remote.appendChild(media);
      if (track.kind === 'video') status('connected', '');
    });
    r.on(LK.RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((e) => e.remove()));
    r.on(LK.RoomEvent.LocalTrackPublished, (pub) => {
      if (pub.track && pub.track.kind === 'video') {
        const media = pub.track.attach();
        media.muted = true;
        $('local-media').replaceChildren(media);
      }
    });
    r.on(LK.RoomEvent.ParticipantConnected, (p) => status('connected', `${p.name || p.identity} joined the media room.`));
    r.on(LK.RoomEvent.ParticipantDisconnected, (p) => status('connected', `${p.name || p.identity} left the media room.`));
    r.on(LK.RoomEvent.Reconnecting, () => {
      if (room === r) status('reconnecting', 'Reconnecting to the media server\u2026');
    });
    r.on(LK.RoomEvent.Reconnected, () => {
      if (room === r) status('connected', 'Media reconnected.');
    });
    r.on(LK.RoomEvent.Disconnected, () => {
      if (room === r) status('failed', 'Disconnected from the LiveKit server.');
    });
    try {
      await withTimeout(r.connect(url, token, { maxRetries: 1, websocketTimeout: 8000 }), 12000, 'Connecting to LiveKit');
    } catch (e) {
      if (room === r) {
        room = null;
        r.disconnect();
      }
      if (gen !== generation) return;
      status('unreachable', `No LiveKit server reachable at ${url} (${e && e.message ? e.message : e}). ` +
             'The call is still connected, without audio or video.');
      return;
    }
    if (gen !== generation || room !== r) {
      r.disconnect();
      return;
    }
    status('connected', `Media connected. Waiting for ${peerName}\u2026`);
    try {
      if (!muted.mic) await r.localParticipant.setMicrophoneEnabled(true);
      if (!muted.cam && !c.audioOnly) await r.localParticipant.setCameraEnabled(true);
    } catch (e) {
      notify(`Camera or microphone unavailable: ${e.message}`, 'warn');
    }
  };

  /** Mutes or unmutes 'mic' | 'cam' (before joining too: the choice is applied on joining);
   *  returns the new muted state. */
  m.toggle = async (kind) => {
    muted[kind] = !muted[kind];
    if (!room) return muted[kind];
    const lp = room.localParticipant;
    try {
      if (kind === 'mic') await lp.setMicrophoneEnabled(!muted.mic);
      else await lp.setCameraEnabled(!muted.cam && !choice().audioOnly);
    } catch (e) {
      notify(`Could not switch the ${kind === 'mic' ? 'microphone' : 'camera'}: ${e.message}`);
    }
    return muted[kind];
  };

  m.muted = (kind) => muted[kind];

  m.leave = () => {
    generation++;
    const r = room;
    room = null;
    if (r) r.disconnect().catch(() => {});
    $('remote-media').replaceChildren();
    $('local-media').replaceChildren();
    status('idle', '');
  };

  return m;
}
