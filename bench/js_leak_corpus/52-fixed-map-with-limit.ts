// source: https://webcoderspeed.com/blog/scaling/nodejs-memory-profiling (the fix: a size limit)
// expect: none
import express from 'express';
const app = express();
const blobs = new Map<string, Buffer>();
const LIMIT = 100;
app.get('/data/:id', (req, res) => {
  const { id } = req.params;
  if (!blobs.has(id)) {
    if (blobs.size >= LIMIT) blobs.delete(blobs.keys().next().value!);
    blobs.set(id, Buffer.alloc(1_000_000));
  }
  res.json({ size: blobs.get(id)!.length });
});
app.listen(3000);
