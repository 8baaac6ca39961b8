% # Static review page written next to the clips; must work from file:// (relative links only).
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="DiveAnalyzer {{version}}">
<title>{{title}} · DiveAnalyzer</title>
<style>
  :root { --bg:#0f1720; --card:#1b2733; --fg:#e8eef4; --muted:#9fb0c0; --accent:#3fa9f5; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background:var(--bg); color:var(--fg); }
  header { padding:16px 20px; border-bottom:1px solid #2a3846; }
  h1 { font-size:20px; margin:0 0 4px; word-break:break-all; }
  .meta { color:var(--muted); font-size:13px; }
  main { display:grid; gap:14px; padding:16px 20px;
         grid-template-columns:repeat(auto-fill, minmax(260px, 1fr)); }
  .card { background:var(--card); border-radius:10px; overflow:hidden; }
  .thumb { position:relative; aspect-ratio:16/9; background:#000; }
  .thumb img { position:absolute; inset:0; width:100%; height:100%; object-fit:contain; }
  .thumb img.alt { opacity:0; transition:opacity .15s; }
  .thumb:hover img.alt.takeoff { opacity:1; }
  .body { padding:10px 12px; }
  .row { display:flex; justify-content:space-between; gap:8px; font-size:13px; color:var(--muted); }
  .num { font-weight:600; color:var(--fg); font-size:16px; }
  .tag { display:inline-block; padding:1px 7px; border-radius:9px; background:#26384a;
         font-size:12px; margin-right:4px; }
  a { color:var(--accent); }
  .empty { padding:40px 20px; color:var(--muted); }
  video { width:100%; display:block; background:#000; }
</style>
</head>
<body>
<header>
  <h1>{{title}}</h1>
  <div class="meta">{{len(dives)}} dive{{"" if len(dives) == 1 else "s"}} ·
    video {{duration_text}} · {{video_size}} · detected with {{signals_text}}
    · confidence ≥ {{confidence_threshold}}</div>
</header>
% if not dives:
<p class="empty">No dives were found in this video.</p>
% end
<main>
% for dive in dives:
  <article class="card" id="dive-{{dive["id"]}}">
    <div class="thumb">
% thumbs = dive.get("thumbnails") or {}
% if thumbs.get("entry"):
      <img src="{{thumbs["entry"]}}" alt="Dive {{dive["id"]}} at water entry" loading="lazy">
% end
% if thumbs.get("takeoff"):
      <img class="alt takeoff" src="{{thumbs["takeoff"]}}" alt="Dive {{dive["id"]}} at takeoff"
           loading="lazy">
% end
    </div>
    <div class="body">
      <div class="row"><span class="num">Dive {{dive["id"]}}</span>
        <span>{{dive["review"]}}</span></div>
      <div class="row"><span>takeoff {{fmt_time(dive["takeoff"])}}</span>
        <span>entry {{fmt_time(dive["entry"])}}</span></div>
      <div class="row"><span>clip {{"%.1f" % (dive["end"] - dive["start"])}} s</span>
        <span>confidence {{"%.2f" % dive["confidence"]}}</span></div>
      <div>
% for signal in dive["signals"]:
        <span class="tag">{{signal}}</span>
% end
      </div>
% if dive.get("clip"):
      <video controls preload="none" src="{{dive["clip"]}}"
% if thumbs.get("entry"):
             poster="{{thumbs["entry"]}}"
% end
      ></video>
      <div class="row"><a href="{{dive["clip"]}}" download>Download clip</a></div>
% end
    </div>
  </article>
% end
</main>
</body>
</html>
