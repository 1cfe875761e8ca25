// Fill the heap to 70% of its limit with live objects, then report RSS − heapTotal.
const keep = [];
const cap = require('v8').getHeapStatistics().heap_size_limit;
while (process.memoryUsage().heapUsed < cap * 0.7) keep.push(new Array(1000).fill(keep.length));
const m = process.memoryUsage();
console.log(JSON.stringify({rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, native: m.rss - m.heapTotal}));
