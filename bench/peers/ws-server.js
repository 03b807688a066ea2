// A node `ws` peer for hermod-bench: `node ws-server.js PORT [broadcast|echo] [deflate]`.
// broadcast: every message received on one connection goes to every open connection (the
// sender included), which hermod-bench's `raw` adapter expects. echo: back to the sender.
// deflate: accept permessage-deflate (ws defaults: context takeover both ways) and compress
// every message sent, however small (hermod-bench --deflate).
// Listens on 127.0.0.1 only; PORT 0 picks a free one. Prints the URL on stderr.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 0);
const mode = process.argv[3] || 'broadcast';
const deflate = process.argv[4] === 'deflate';
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate ? { threshold: 0 } : false,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (mode === 'echo') {
      ws.send(data, { binary: isBinary });
      return;
    }
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});
wss.on('listening', () => {
  console.error(`listening on ws://127.0.0.1:${wss.address().port}/ (${mode}${deflate ? ', deflate' : ''})`);
});
