/** The demo page: a small chat whose messages travel over a WebSocket through the proxy. */
export const DEMO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard demo</title>
<style>
  :root { color-scheme: light dark; --accent: #2f6fde; --ok: #1a7f37; --bad: #c62828; }
  body { font: 16px/1.45 system-ui, sans-serif; margin: 0; display: flex; justify-content: center; }
  main { width: min(720px, 100%); padding: 1.5rem; box-sizing: border-box; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  p.lead { margin: 0 0 1rem; opacity: .8; }
  #status { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-size: .85rem; background: #8883; }
  #status.open { background: var(--ok); color: #fff; }
  #status.closed { background: var(--bad); color: #fff; }
  #path { font-family: ui-monospace, monospace; font-size: .85rem; margin: .75rem 0; padding: .6rem .8rem; background: #8881; border-radius: .5rem; white-space: pre-wrap; }
  #log { list-style: none; padding: 0; margin: 0 0 1rem; height: 40vh; overflow-y: auto; border: 1px solid #8884; border-radius: .5rem; }
  #log li { padding: .35rem .8rem; border-bottom: 1px solid #8882; }
  #log li .meta { font-size: .75rem; opacity: .65; margin-right: .5rem; }
  form { display: flex; gap: .5rem; }
  input { flex: 1; font: inherit; padding: .5rem .7rem; border-radius: .5rem; border: 1px solid #8886; }
  button { font: inherit; padding: .5rem 1rem; border-radius: .5rem; border: 0; background: var(--accent); color: #fff; cursor: pointer; }
</style>
</head>
<body>
<main>
  <h1>Switchyard demo</h1>
  <p class="lead">This page and its chat come from a demo origin behind Switchyard. Open it in two tabs: every message goes out over a WebSocket, through the proxy, and back to everyone.</p>
  <p>WebSocket: <span id="status">connecting…</span> <span id="rtt"></span></p>
  <div id="path">waiting for the origin…</div>
  <ul id="log"></ul>
  <form id="form"><input id="message" autocomplete="off" placeholder="Say something" aria-label="message"><button id="send" type="submit">Send</button></form>
</main>
<script>
  const demo = window.demo = { received: [], open: false };
  const status = document.getElementById('status');
  const log = document.getElementById('log');
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  let socket;
  function show(text, meta) {
    const item = document.createElement('li');
    const tag = document.createElement('span');
    tag.className = 'meta';
    tag.textContent = meta;
    item.append(tag, document.createTextNode(text));
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }
  function connect() {
    socket = new WebSocket(scheme + '://' + location.host + '/chat');
    socket.onopen = () => { demo.open = true; status.textContent = 'open'; status.className = 'open'; };
    socket.onclose = (event) => {
      demo.open = false; status.textContent = 'closed (' + event.code + '), reconnecting…'; status.className = 'closed';
      setTimeout(connect, 1000);
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      demo.received.push(message);
      if (message.type === 'welcome') {
        document.getElementById('path').textContent =
          'The origin saw this WebSocket arrive with:\\n  Via: ' + message.via + '\\n  X-Forwarded-For: ' + message.forwardedFor + '\\n  X-Forwarded-Proto: ' + message.forwardedProto;
        show('connected as ' + message.name, 'origin');
      } else if (message.type === 'chat') {
        const rtt = message.sentAt && message.from === demo.name ? ' (' + (performance.now() - message.sentAt).toFixed(1) + ' ms round trip)' : '';
        show(message.text + rtt, message.from);
      }
      if (message.type === 'welcome') demo.name = message.name;
    };
  }
  document.getElementById('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('message');
    if (!input.value || !socket || socket.readyState !== 1) return;
    socket.send(JSON.stringify({ text: input.value, sentAt: performance.now() }));
    input.value = '';
  });
  connect();
</script>
</body>
</html>
`;
