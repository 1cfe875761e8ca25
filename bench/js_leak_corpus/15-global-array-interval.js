// source: https://memory-leak-school.pages.dev/node/global-caches/ (module array pushed by an interval)
// expect: unbounded-module-cache, interval-never-cleared
const store = [];
setInterval(() => {
  store.push(new Array(100_000).fill({ ts: Date.now() }));
}, 500);
