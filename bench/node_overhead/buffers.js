const bufs = [];
for (let i = 0; i < 300; i++) bufs.push(Buffer.alloc(1 << 20, 1));
const m = process.memoryUsage();
console.log(JSON.stringify({rss: m.rss, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers}));
