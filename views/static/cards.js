// Dive cards of the review gallery, and the small formatting helpers the page shares.
// Every value from files and events goes in with textContent or as an attribute of an
// element made with createElement: never as HTML.

export const FRAMES = ["takeoff", "entry", "end"];

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Files of the session (clip, thumbnail) as URLs below `base`; anything but a plain relative
// path (no "..", nothing hidden, no scheme) gives null.
export function makeFileUrl(base) {
  return (path) => {
    if (typeof path !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.\/-]*$/.test(path)) return null;
    if (path.split("/").some((part) => part === ".." || part.startsWith("."))) return null;
    return base + "/" + path.split("/").map(encodeURIComponent).join("/");
  };
}

export function num(value) {
  return typeof value === "number" && isFinite(value) ? value : null;
}

export function fmtTime(seconds) {
  const s = num(seconds);
  if (s === null) return "—";
  const tenths = Math.round(Math.max(0, s) * 10);
  const minutes = Math.floor(tenths / 600);
  const rest = (tenths - minutes * 600) / 10;
  return String(minutes).padStart(2, "0") + ":" + rest.toFixed(1).padStart(4, "0");
}

export function fmtEta(seconds) {
  const s = num(seconds);
  if (s === null) return "";
  if (s < 60) return "about " + Math.max(1, Math.round(s)) + " s left";
  return "about " + Math.floor(s / 60) + " min " + Math.round(s % 60) + " s left";
}

export function duration(dive) {
  const start = num(dive.start), end = num(dive.end);
  return start !== null && end !== null ? "clip " + (end - start).toFixed(1) + " s" : "clip —";
}

// (Re)draw a card for `dive`. ctx: {fileUrl, selected, openPlayer, sendReview, toggleReview}.
export function fillCard(card, dive, ctx) {
  const key = String(dive.id);
  card.dataset.review = dive.review || "pending";
  card.dataset.star = dive.star ? "true" : "false";
  card.dataset.confidence = String(num(dive.confidence) ?? 0);
  card.replaceChildren(thumbBox(dive, ctx), cardBody(dive, ctx));
  card.classList.toggle("selected", ctx.selected === key);
}

function thumbBox(dive, ctx) {
  const key = String(dive.id);
  const box = el("div", "thumb");
  const thumbs = dive.thumbnails || {};
  const img = el("img");
  const label = el("span", "frame-label");
  let frame = "entry";
  const show = (name) => {
    const url = ctx.fileUrl(thumbs[name]) || ctx.fileUrl(thumbs.entry);
    frame = name;
    label.textContent = name;
    if (url && img.getAttribute("src") !== url) img.src = url;
  };
  img.alt = "Dive " + key;
  img.decoding = "async";
  if (ctx.fileUrl(thumbs.entry)) {
    show("entry");
    box.append(img, label);
  } else {
    box.append(el("span", "placeholder", dive.clip === undefined ? "extracting…" : "no picture"));
  }
  // Mouse: the frame under the pointer (left third takeoff, middle entry, right end).
  box.addEventListener("pointermove", (e) => {
    if (e.pointerType !== "mouse") return;
    const x = (e.clientX - box.getBoundingClientRect().left) / box.clientWidth;
    show(FRAMES[Math.min(2, Math.max(0, Math.floor(x * 3)))]);
  });
  box.addEventListener("pointerleave", () => show("entry"));
  // Touch: a tap steps through the frames; a mouse click opens the player.
  box.addEventListener("click", (e) => {
    if (e.pointerType === "touch" || (e.pointerType === "" && box.dataset.touched)) {
      show(FRAMES[(FRAMES.indexOf(frame) + 1) % 3]);
    } else {
      ctx.openPlayer(key);
    }
  });
  box.addEventListener("touchstart", () => { box.dataset.touched = "1"; }, { passive: true });
  const badge = el("span", "badge " + (dive.review || "pending"), dive.review || "pending");
  box.append(badge);
  return box;
}

function cardBody(dive, ctx) {
  const key = String(dive.id);
  const body = el("div", "body");
  const head = el("div", "row head");
  head.append(el("span", "num", "Dive " + key));
  const star = el("button", "star-toggle" + (dive.star ? " on" : ""), dive.star ? "★" : "☆");
  star.type = "button";
  star.title = dive.star ? "Unstar (S)" : "Star (S)";
  star.setAttribute("aria-pressed", dive.star ? "true" : "false");
  star.addEventListener("click", () => ctx.sendReview(key, { star: !dive.star }));
  head.append(star);
  body.append(head);
  const times = el("div", "row");
  times.append(el("span", "t-takeoff", "takeoff " + fmtTime(dive.takeoff)));
  times.append(el("span", "t-entry", "entry " + fmtTime(dive.entry)));
  body.append(times);
  const facts = el("div", "row");
  facts.append(el("span", "", duration(dive)));
  const conf = num(dive.confidence);
  facts.append(el("span", "conf", "confidence " + (conf === null ? "—" : conf.toFixed(2))));
  body.append(facts);
  const tags = el("div", "tags");
  for (const signal of Array.isArray(dive.signals) ? dive.signals : []) {
    tags.append(el("span", "tag", signal));
  }
  body.append(tags);
  if (dive.note) body.append(el("div", "note", dive.note));
  if (dive.error) body.append(el("div", "note error", dive.error));
  body.append(cardActions(dive, ctx));
  return body;
}

function cardActions(dive, ctx) {
  const key = String(dive.id);
  const actions = el("div", "actions");
  const play = el("button", "play", "▶ Play");
  play.type = "button";
  play.disabled = !ctx.fileUrl(dive.clip);
  play.addEventListener("click", () => ctx.openPlayer(key));
  const keep = el("button", "keep" + (dive.review === "keep" ? " on" : ""), "Keep");
  keep.type = "button";
  keep.addEventListener("click", () => ctx.toggleReview(key, "keep"));
  const reject = el("button", "reject" + (dive.review === "reject" ? " on" : ""), "Reject");
  reject.type = "button";
  reject.addEventListener("click", () => ctx.toggleReview(key, "reject"));
  actions.append(play, keep, reject);
  const clip = ctx.fileUrl(dive.clip);
  if (clip) {
    const link = el("a", "download", "⬇");
    link.href = clip;
    link.setAttribute("download", "");
    link.title = "Download the clip";
    actions.append(link);
  }
  return actions;
}
