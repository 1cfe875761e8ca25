// source: https://github.com/juspay/hyperswitch-control-center/issues/4665 (getRequestBody with no size limit)
// expect: unbounded-buffer
import http from 'node:http';
const getRequestBody = (req) =>
  new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk.toString()));
    req.on('end', () => resolve(JSON.parse(body)));
    req.on('error', reject);
  });
http.createServer(async (req, res) => {
  const cfg = await getRequestBody(req);
  res.end(JSON.stringify(cfg));
}).listen(8080);
