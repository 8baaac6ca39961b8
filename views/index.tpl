% # The index page of a folder of sessions (every value escaped by the template).
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="DiveAnalyzer {{version}}">
<title>{{folder}} · DiveAnalyzer sessions</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css?v={{version}}">
</head>
<body>
<header class="top">
  <div class="title">
    <h1>Sessions in {{folder}}</h1>
    <div class="meta">{{len(sessions)}} session{{"" if len(sessions) == 1 else "s"}}</div>
  </div>
</header>
<main class="index">
  <table class="sessions">
    <thead><tr><th>Session</th><th>Video</th><th>Processed (UTC)</th>
      <th class="n">Dives</th><th class="n">Reviewed</th><th class="n">Kept</th></tr></thead>
    <tbody>
% for s in sessions:
      <tr>
        <td data-label="Session"><a href="/s/{{s.name}}/{{link_suffix}}">{{s.name}}</a></td>
        <td data-label="Video">{{s.video or "—"}}{{" (" + s.error + ")" if s.error else ""}}</td>
        <td data-label="Processed">{{s.date}}</td>
        <td data-label="Dives" class="n">{{s.dives}}</td>
        <td data-label="Reviewed" class="n">{{s.reviewed}} / {{s.dives}}</td>
        <td data-label="Kept" class="n">{{s.kept}}</td>
      </tr>
% end
    </tbody>
  </table>
</main>
</body>
</html>
