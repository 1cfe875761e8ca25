// source: https://github.com/NickFlach/kannaka-eye/issues/8 (POST body concatenated with no cap)
// expect: unbounded-buffer
const http = require('http');
http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/api/process') {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => res.end(JSON.stringify({ n: JSON.parse(body).data.length })));
    return;
  }
  res.end('ok');
}).listen(3333);
