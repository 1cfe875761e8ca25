// source: https://memory-leak-school.pages.dev/node/global-caches/ (the fix: a bounded ring buffer)
// expect: none
const store = [];
const timer = setInterval(() => {
  store.push({ ts: Date.now() });
  if (store.length > 1000) store.shift();
}, 500);
timer.unref();
