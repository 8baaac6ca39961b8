// Runs the <script> of views/live.html in Node against a real server, with a tiny DOM stand-in.
// Usage: node --experimental-eventsource live_page_harness.mjs BASE_URL LIVE_HTML
// Prints the page state as one JSON line every 100 ms, and "RELOAD" when the page would
// switch to the gallery (then exits).
import fs from "node:fs";
import vm from "node:vm";

const [base, htmlPath] = process.argv.slice(2);
const html = fs.readFileSync(htmlPath, "utf8");
const script = html.match(/<script>([\s\S]*?)<\/script>/)[1];

class Element {
  constructor(tag) { this.tag = tag; this.children = []; this.dataset = {}; this.textContent = ""; }
  prepend(child) { this.children.unshift(child); }
  append(...children) { this.children.push(...children); }
}
const elements = { events: new Element("ol"), status: new Element("span"), "status-text": new Element("span") };
globalThis.document = { getElementById: (id) => elements[id], createElement: (tag) => new Element(tag) };
globalThis.window = { location: { reload() { console.log("RELOAD"); process.exit(0); } } };

// The page uses relative URLs, as a browser resolves them against the page's address.
const realFetch = globalThis.fetch;
globalThis.fetch = (url, options) => realFetch(new URL(url, base), options);
const RealEventSource = globalThis.EventSource;
globalThis.EventSource = class extends RealEventSource {
  constructor(url, options) { super(new URL(url, base), options); }
};

setInterval(() => {
  const items = elements.events.children.map((li) => li.children.map((part) => part.textContent));
  console.log(JSON.stringify({ state: elements.status.dataset.state, items }));
}, 100);
vm.runInThisContext(script);
