// Live mode of the session page: the processing's stage, progress bar, ETA and notes, and the
// cards that appear as the pipeline's events arrive. Text goes in with textContent only.
import { el, fmtEta, num } from "./cards.js";

const $ = (id) => document.getElementById(id);

const STAGES = {
  probe: "Reading the video", audio: "Listening for splashes", motion: "Looking for motion",
  person: "Finding divers on the board", extract: "Cutting clips", done: "Finishing",
};

function note(text) {
  const notes = $("notes");
  notes.prepend(el("li", "", text));
  while (notes.children.length > 6) notes.lastChild.remove();
}

function setProgress(stage, percent, eta) {
  const p = Math.max(0, Math.min(100, num(percent) ?? 0));
  $("stage").textContent = stage;
  $("bar-fill").style.width = p + "%";
  $("bar").setAttribute("aria-valuenow", String(Math.round(p)));
  $("eta").textContent = Math.round(p) + " %" + (fmtEta(eta) ? " · " + fmtEta(eta) : "");
}

// Clears what an earlier run showed (a new run starts, or the history is replayed).
export function resetLivePanel() {
  $("notes").replaceChildren();
  $("livebox").classList.remove("failed");
}

// Applies one processing event. ui: {upsertDive, clearDives, catchUp}.
export function applyLiveEvent(type, payload, ui) {
  switch (type) {
    case "processing_started":
      ui.clearDives(); // a new run: the cards shown belong to an earlier one
      resetLivePanel();
      $("title").textContent = String(payload.video || "video").split(/[\\/]/).pop();
      setProgress("Starting", 0, null);
      break;
    case "progress":
      setProgress(STAGES[payload.stage] || String(payload.stage || "Working"),
        payload.percent, payload.eta_s);
      break;
    case "splash_detection_complete":
      note("Splash detection: " + payload.peak_count + " splash(es)"); break;
    case "motion_detection_complete":
      note("Motion detection: " + payload.burst_count + " burst(s)"); break;
    case "person_detection_complete":
      note("Diver detection: " + payload.departure_count + " takeoff(s)"); break;
    case "dives_detected":
      note(payload.dive_count + " dive(s) found with " + (payload.signal_type || "the signals"));
      break;
    case "dive_detected":
      ui.upsertDive(payload); break;
    case "dive_extracted":
      ui.upsertDive({ id: payload.id, clip: payload.clip, thumbnails: payload.thumbnails }); break;
    case "dive_extraction_failed":
      ui.upsertDive({ id: payload.id, clip: null, error: payload.error }); break;
    case "extraction_complete":
      note(payload.successful + " of " + payload.total_dives + " clips written"); break;
    case "processing_complete":
      setProgress("Done", 100, null);
      ui.catchUp(false);
      break;
    case "processing_failed":
      $("stage").textContent = "Processing failed: " + String(payload.error || "unknown error");
      $("livebox").classList.add("failed");
      break;
  }
}
