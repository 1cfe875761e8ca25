// source: https://itlead.org/interview-questions/nodejs/nodejs-memory-leaks (cache keyed by Date.now())
// expect: unbounded-module-cache, interval-never-cleared
let cache = {};
setInterval(() => {
  cache[Date.now()] = new Array(1_000_000).fill('x');
  console.log(Object.keys(cache).length);
}, 1000);
