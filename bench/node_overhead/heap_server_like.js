// Fill the heap to 70% of its limit with server-like data (strings, objects in a Map), then report RSS − heapTotal.
require('http'); require('crypto'); require('zlib'); require('url'); require('stream');
const keep = new Map();
const cap = require('v8').getHeapStatistics().heap_size_limit;
let i = 0;
while (process.memoryUsage().heapUsed < cap * 0.7) { keep.set('k' + i, { id: i, name: 'user-' + i + '-' + 'x'.repeat(i % 50), tags: [i, i + 1] }); i++; }
const m = process.memoryUsage();
console.log(JSON.stringify({rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, native: m.rss - m.heapTotal}));
