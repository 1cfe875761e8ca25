// source: https://webcoderspeed.com/blog/scaling/nodejs-memory-profiling (Map<string, Buffer> never cleared)
// expect: unbounded-module-cache
import express from 'express';
const app = express();
const blobs = new Map<string, Buffer>();
app.get('/data/:id', (req, res) => {
  const { id } = req.params;
  if (!blobs.has(id)) blobs.set(id, Buffer.alloc(1_000_000));
  res.json({ size: blobs.get(id)!.length });
});
app.listen(3000);
