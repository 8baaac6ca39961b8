% # The session page: a shell filled in by static/app.js from the JSON config below.
% # Every value from files or events is rendered by the script with textContent.
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="DiveAnalyzer {{version}}">
<title>{{title}} · DiveAnalyzer</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css?v={{version}}">
</head>
<body class="{{"live" if live else ""}}">
<header class="top">
  <div class="title">
    <a class="back" id="back" hidden href="/">← Sessions</a>
    <h1 id="title">{{title}}</h1>
    <div class="meta" id="meta"></div>
  </div>
  <span class="conn" id="conn" data-state="connecting" role="status" title="Live updates">
    <span class="dot"></span><span id="conn-text">connecting</span>
  </span>
</header>

<section class="livebox" id="livebox" hidden aria-live="polite">
  <div class="live-head"><strong id="stage">Waiting for the processing to start</strong>
    <span id="eta"></span></div>
  <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" id="bar">
    <div class="fill" id="bar-fill"></div></div>
  <ol class="notes" id="notes"></ol>
</section>

<nav class="toolbar" aria-label="Filter and sort">
  <label>Show <select id="f-review">
    <option value="all">all dives</option>
    <option value="pending">pending</option>
    <option value="keep">kept</option>
    <option value="reject">rejected</option>
    <option value="star">starred</option>
  </select></label>
  <label>Confidence ≥ <select id="f-conf">
    <option value="0">any</option>
    <option value="0.5">0.5</option>
    <option value="0.7">0.7</option>
    <option value="0.9">0.9</option>
  </select></label>
  <label>Sort <select id="f-sort">
    <option value="time">by time</option>
    <option value="confidence">by confidence</option>
    <option value="review">by review state</option>
  </select></label>
  <span class="counts" id="counts"></span>
  <span class="exports" id="exports">Export
    <a id="x-csv" href="#" download>CSV</a>
    <a id="x-json" href="#" download>JSON</a>
    <a id="x-edl" href="#" download>EDL</a></span>
  <button type="button" id="help-button" class="ghost" title="Keyboard shortcuts (?)">?</button>
</nav>

<p class="notice" id="notice" hidden></p>
<main class="grid" id="grid" aria-label="Dives"></main>
<p class="empty" id="empty" hidden></p>

<div class="overlay" id="player" hidden role="dialog" aria-modal="true" aria-labelledby="p-title">
  <div class="player">
    <div class="p-head">
      <h2 id="p-title">Dive</h2>
      <button type="button" class="ghost" id="p-close" title="Close (Esc)">✕</button>
    </div>
    <video id="p-video" controls playsinline preload="auto"></video>
    <div class="p-info" id="p-info"></div>
    <div class="p-actions">
      <button type="button" id="p-prev" title="Previous dive (←)">← Prev</button>
      <button type="button" id="p-keep" class="keep" title="Keep (K)">Keep</button>
      <button type="button" id="p-reject" class="reject" title="Reject (R)">Reject</button>
      <button type="button" id="p-star" class="star" title="Star (S)">☆ Star</button>
      <a id="p-download" class="button" download>Download</a>
      <button type="button" id="p-next" title="Next dive (→)">Next →</button>
    </div>
    <label class="p-note">Note <input id="p-note" type="text" maxlength="2000"
      placeholder="Add a note (saved when you leave the field)"></label>
  </div>
</div>

<div class="overlay" id="help" hidden role="dialog" aria-modal="true" aria-labelledby="h-title">
  <div class="help">
    <h2 id="h-title">Keyboard shortcuts</h2>
    <dl>
      <dt>← / →</dt><dd>previous / next dive</dd>
      <dt>Enter</dt><dd>open the selected dive</dd>
      <dt>Space</dt><dd>play / pause</dd>
      <dt>K</dt><dd>keep</dd>
      <dt>R</dt><dd>reject</dd>
      <dt>S</dt><dd>star / unstar</dd>
      <dt>?</dt><dd>this help</dd>
      <dt>Esc</dt><dd>close</dd>
    </dl>
    <button type="button" id="h-close">Close</button>
  </div>
</div>

<div class="toast" id="toast" hidden role="alert"></div>
<noscript><p class="notice">This page needs JavaScript: it shows the dives and follows the
processing live over Server-Sent Events (EventSource on /events).</p></noscript>
<script id="config" type="application/json">{{!config_json}}</script>
<script type="module" src="/static/app.js?v={{version}}"></script>
</body>
</html>
