// source: https://github.com/NickFlach/kannaka-eye/issues/8 (the fix: a byte cap and 413)
// expect: none
const http = require('http');
const MAX = 1 << 20;
http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > MAX) { res.writeHead(413).end(); req.destroy(); }
  });
  req.on('end', () => res.end('ok'));
}).listen(3333);
