// source: https://github.com/ooples/token-optimizer-mcp/pull/382 (readBody collects chunks, review: no cap)
// expect: unbounded-buffer
import { createServer, IncomingMessage } from 'node:http';
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
createServer(async (req, res) => {
  const body = await readBody(req);
  res.end(String(body.length));
}).listen(8787);
