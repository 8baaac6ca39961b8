// DiveAnalyzer review gallery: the session page (cards, player, filters, shortcuts, reviews,
// live updates). Every value from files and events goes into the page with textContent or
// as an attribute of an element made with createElement: never as HTML.
import { duration, el, fillCard, fmtTime, makeFileUrl, num } from "./cards.js";
import { applyLiveEvent, resetLivePanel } from "./live.js";

const config = JSON.parse(document.getElementById("config").textContent);
const base = config.base || "";
const token = new URLSearchParams(window.location.search).get("token") || "";
const fileUrl = makeFileUrl(base);

const LIVE_TYPES = [
  "processing_started", "progress", "splash_detection_complete", "motion_detection_complete",
  "person_detection_complete", "dive_detected", "dives_detected", "dive_extracted",
  "dive_extraction_failed", "extraction_complete", "processing_complete", "processing_failed",
  "dive_reviewed",
];

const state = {
  manifest: null,
  dives: new Map(), // String(id) -> dive record
  cards: new Map(), // String(id) -> card element
  live: false,
  current: null, // id shown in the player
  selected: null, // id of the highlighted card
  lastEventId: null,
  source: null,
  everConnected: false,
  dropped: false,
};

const $ = (id) => document.getElementById(id);

function withToken(url) {
  return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
}


// -- cards ----------------------------------------------------------------------------------

function cardContext() {
  return { fileUrl, selected: state.selected, openPlayer, sendReview, toggleReview };
}

function upsertDive(record) {
  if (!record || record.id === undefined || record.id === null) return;
  if (isStaleReview(record)) return;
  const key = String(record.id);
  const merged = Object.assign({}, state.dives.get(key) || {}, record);
  if (!("revision" in record)) delete merged.revision; // a new processing run: reviews restart
  state.dives.set(key, merged);
  let card = state.cards.get(key);
  if (!card) {
    card = el("article", "card");
    card.id = "dive-" + key;
    card.dataset.id = key;
    card.tabIndex = 0;
    card.addEventListener("focus", () => select(key));
    state.cards.set(key, card);
    $("grid").append(card);
  }
  fillCard(card, merged, cardContext());
  if (state.current === key) fillPlayer(merged, false);
}


// A review reply, the dive_reviewed events of every viewer and a re-read manifest come on
// different connections, so they can arrive out of order: an older revision of a dive than
// the one shown is stale. Records without a revision (processing events) never are.
function isStaleReview(record) {
  const held = state.dives.get(String(record.id));
  const [have, got] = [num(held && held.revision), num(record.revision)];
  return have !== null && got !== null && got < have;
}

// -- filter, sort, counts -------------------------------------------------------------------

function visibleIds() {
  const review = $("f-review").value;
  const minConf = Number($("f-conf").value);
  const sort = $("f-sort").value;
  const order = { pending: 0, keep: 1, reject: 2 };
  const dives = [...state.dives.values()].filter((d) => {
    if (review === "star" ? !d.star : review !== "all" && (d.review || "pending") !== review) return false;
    return (num(d.confidence) ?? 0) >= minConf;
  });
  const time = (d) => num(d.entry) ?? num(d.start) ?? 0;
  dives.sort((a, b) => {
    if (sort === "confidence") return (num(b.confidence) ?? 0) - (num(a.confidence) ?? 0) || time(a) - time(b);
    if (sort === "review") return (order[a.review] ?? 0) - (order[b.review] ?? 0) || time(a) - time(b);
    return time(a) - time(b) || Number(a.id) - Number(b.id);
  });
  return dives.map((d) => String(d.id));
}

function applyView() {
  const ids = visibleIds();
  const shown = new Set(ids);
  const grid = $("grid");
  for (const id of ids) grid.append(state.cards.get(id)); // re-appending reorders
  for (const [id, card] of state.cards) card.hidden = !shown.has(id);
  const all = [...state.dives.values()];
  const count = (r) => all.filter((d) => (d.review || "pending") === r).length;
  $("counts").textContent = all.length + " dives · " + count("keep") + " kept · " +
    count("reject") + " rejected · " + count("pending") + " pending";
  const empty = $("empty");
  empty.hidden = ids.length > 0;
  empty.textContent = all.length === 0
    ? (state.live ? "No dives yet: they appear here as they are found." : "No dives were found in this video.")
    : "No dive matches these filters.";
}

function select(id) {
  state.selected = id;
  for (const [key, card] of state.cards) card.classList.toggle("selected", key === id);
}

function moveSelection(delta) {
  const ids = visibleIds();
  if (!ids.length) return;
  const at = ids.indexOf(state.selected);
  const next = ids[at < 0 ? 0 : Math.min(ids.length - 1, Math.max(0, at + delta))];
  select(next);
  const card = state.cards.get(next);
  card.focus({ preventScroll: true });
  card.scrollIntoView({ block: "nearest" });
}

// -- player ---------------------------------------------------------------------------------

function openPlayer(id) {
  const dive = state.dives.get(id);
  if (!dive) return;
  state.current = id;
  select(id);
  $("player").hidden = false;
  fillPlayer(dive, true);
}

function closePlayer() {
  const video = $("p-video");
  video.pause();
  $("player").hidden = true;
  const card = state.cards.get(state.current);
  state.current = null;
  if (card) card.focus({ preventScroll: true });
}

function fillPlayer(dive, load) {
  const key = String(dive.id);
  $("p-title").textContent = "Dive " + key;
  const info = $("p-info");
  info.replaceChildren(
    el("span", "", "takeoff " + fmtTime(dive.takeoff)),
    el("span", "", "entry " + fmtTime(dive.entry)),
    el("span", "", duration(dive)),
    el("span", "", "confidence " + (num(dive.confidence) ?? 0).toFixed(2)),
    el("span", "badge " + (dive.review || "pending"), dive.review || "pending"),
  );
  $("p-keep").classList.toggle("on", dive.review === "keep");
  $("p-reject").classList.toggle("on", dive.review === "reject");
  $("p-star").classList.toggle("on", !!dive.star);
  $("p-star").textContent = dive.star ? "★ Starred" : "☆ Star";
  const note = $("p-note");
  if (document.activeElement !== note) note.value = dive.note || "";
  const clip = fileUrl(dive.clip);
  const download = $("p-download");
  download.hidden = !clip;
  if (clip) download.href = clip;
  if (load) {
    const video = $("p-video");
    const poster = fileUrl((dive.thumbnails || {}).entry);
    if (poster) video.poster = poster; else video.removeAttribute("poster");
    if (clip) {
      video.src = clip;
      video.play().catch(() => {}); // autoplay may be refused until the user interacts
    } else {
      video.removeAttribute("src");
      video.load();
    }
  }
}

function movePlayer(delta) {
  const ids = visibleIds();
  if (!ids.length) return;
  const at = ids.indexOf(state.current);
  const next = at + delta;
  if (at >= 0 && (next < 0 || next >= ids.length)) return;
  openPlayer(ids[at < 0 ? 0 : next]);
}

// -- reviews --------------------------------------------------------------------------------

function target() {
  return state.current || state.selected;
}

function toggleReview(id, review) {
  const dive = state.dives.get(id);
  if (dive) sendReview(id, { review: dive.review === review ? "pending" : review });
}

async function sendReview(id, change) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["X-DiveAnalyzer-Token"] = token;
  try {
    const response = await fetch(base + "/api/dives/" + encodeURIComponent(id), {
      method: "POST", headers, body: JSON.stringify(change), cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || "HTTP " + response.status);
    upsertDive(body.dive);
    applyView();
  } catch (err) {
    console.warn("review not saved:", err);
    toast("Not saved: " + err.message);
  }
}

let toastTimer = null;
function toast(message) {
  const box = $("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

// -- session and live mode ------------------------------------------------------------------

function setManifest(manifest) {
  state.manifest = manifest;
  setLive(false);
  const video = manifest.video || {};
  const name = String(video.path || "session").split(/[\\/]/).pop();
  $("title").textContent = name;
  document.title = name + " · DiveAnalyzer";
  const parts = [];
  if (num(video.duration) !== null) parts.push("video " + fmtTime(video.duration));
  if (video.width && video.height) parts.push(video.width + "×" + video.height);
  if (num(video.fps) !== null) parts.push(Math.round(video.fps) + " fps");
  if (video.has_audio === false) parts.push("no audio: motion only");
  $("meta").textContent = parts.join(" · ");
  const ids = new Set();
  for (const dive of manifest.dives || []) {
    ids.add(String(dive.id));
    upsertDive(dive);
  }
  for (const [id, card] of state.cards) {
    if (!ids.has(id)) { card.remove(); state.cards.delete(id); state.dives.delete(id); }
  }
  applyView();
}


function setLive(live) {
  state.live = live;
  document.body.classList.toggle("live", live);
  $("livebox").hidden = !live;
}


function onEvent(type, payload) {
  if (type === "dive_reviewed") {
    if (payload.session === config.session && payload.dive) { upsertDive(payload.dive); applyView(); }
    return;
  }
  if (!state.live) {
    if (type !== "processing_started") return;
    setLive(true);
  }
  applyLiveEvent(type, payload, { upsertDive, clearDives, catchUp });
  applyView();
}

function clearDives() {
  for (const card of state.cards.values()) card.remove();
  state.cards.clear();
  state.dives.clear();
}

// After a reconnection, a resync, or the end of processing: the manifest is the truth.
async function catchUp(replay = true) {
  try {
    const response = await fetch(base + "/api/session", { cache: "no-store" });
    if (response.ok) { setManifest(await response.json()); return; }
    if (response.status === 404 && state.live && replay) await replayHistory();
  } catch (err) { /* offline: the indicator says so, and the next reconnection retries */ }
}

async function replayHistory() {
  const response = await fetch("/events/history", { cache: "no-store" });
  if (!response.ok) return;
  resetLivePanel();
  for (const event of await response.json()) onEvent(event.event_type, event.payload || {});
}

// -- the event stream -----------------------------------------------------------------------

function setConn(stateName, text) {
  $("conn").dataset.state = stateName;
  $("conn-text").textContent = text;
}

function connect(lastId) {
  const url = "/events" + (lastId !== null && lastId !== undefined ? "?last_event_id=" + lastId : "");
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener("connected", () => {
    setConn("open", "live");
    if (state.dropped) { state.dropped = false; catchUp(); }
    state.everConnected = true;
  });
  source.addEventListener("resync", () => catchUp());
  source.addEventListener("error", () => {
    state.dropped = true;
    if (source.readyState === EventSource.CLOSED) {
      setConn("closed", "offline");
      setTimeout(() => { if (state.source === source) connect(state.lastEventId); }, 3000);
    } else {
      setConn("connecting", "reconnecting");
    }
  });
  for (const type of LIVE_TYPES) {
    source.addEventListener(type, (e) => {
      if (e.lastEventId) state.lastEventId = Number(e.lastEventId);
      let payload;
      try { payload = JSON.parse(e.data); } catch (err) { return; }
      if (payload && typeof payload === "object") onEvent(type, payload);
    });
  }
}

// -- keyboard and controls ------------------------------------------------------------------

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = (e.target.tagName || "").toLowerCase();
  if (["input", "textarea", "select"].includes(tag)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const playerOpen = !$("player").hidden;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  const id = target();
  let handled = true;
  if (key === "?") toggleHelp();
  else if (key === "Escape") { if (!$("help").hidden) toggleHelp(false); else if (playerOpen) closePlayer(); }
  else if (key === "ArrowRight") playerOpen ? movePlayer(1) : moveSelection(1);
  else if (key === "ArrowLeft") playerOpen ? movePlayer(-1) : moveSelection(-1);
  else if (key === " ") {
    if (playerOpen) { const v = $("p-video"); v.paused ? v.play().catch(() => {}) : v.pause(); }
    else if (id) openPlayer(id);
  }
  else if (key === "Enter" && !playerOpen && id && tag !== "button" && tag !== "a") openPlayer(id);
  else if (key === "k" && id) toggleReview(id, "keep");
  else if (key === "r" && id) toggleReview(id, "reject");
  else if (key === "s" && id) sendReview(id, { star: !state.dives.get(id).star });
  else handled = false;
  if (handled) e.preventDefault();
}

function toggleHelp(show) {
  const help = $("help");
  help.hidden = show === undefined ? !help.hidden : !show;
}

function wireControls() {
  for (const id of ["f-review", "f-conf", "f-sort"]) $(id).addEventListener("change", applyView);
  for (const fmt of ["csv", "json", "edl"]) $("x-" + fmt).href = base + "/export." + fmt;
  $("p-close").addEventListener("click", closePlayer);
  $("p-prev").addEventListener("click", () => movePlayer(-1));
  $("p-next").addEventListener("click", () => movePlayer(1));
  $("p-keep").addEventListener("click", () => state.current && toggleReview(state.current, "keep"));
  $("p-reject").addEventListener("click", () => state.current && toggleReview(state.current, "reject"));
  $("p-star").addEventListener("click", () => {
    if (state.current) sendReview(state.current, { star: !state.dives.get(state.current).star });
  });
  $("p-note").addEventListener("change", (e) => {
    if (state.current) sendReview(state.current, { note: e.target.value });
  });
  $("player").addEventListener("click", (e) => { if (e.target === $("player")) closePlayer(); });
  $("help").addEventListener("click", (e) => { if (e.target === $("help")) toggleHelp(false); });
  $("help-button").addEventListener("click", () => toggleHelp());
  $("h-close").addEventListener("click", () => toggleHelp(false));
  document.addEventListener("keydown", onKey);
  if (config.index_url) { $("back").href = withToken(config.index_url); $("back").hidden = false; }
  if (config.token_required && !token) {
    const notice = $("notice");
    notice.textContent = "View only: this server is shared on the network, and reviewing " +
      "needs the address with ?token=… printed when it started.";
    notice.hidden = false;
  }
}

wireControls();
if (config.manifest) {
  setManifest(config.manifest);
  connect(config.last_id);
} else {
  setLive(true);
  applyView();
  connect(0); // the whole history: everything this run has found so far
  setInterval(() => { if (state.live) catchUp(false); }, 5000);
}
