setTimeout(() => { const m = process.memoryUsage(); console.log(JSON.stringify({rss: m.rss, heapTotal: m.heapTotal})); }, 200);
