// memfit's runtime view (docs/runtime-view.md in memfit's repository): loaded into every
// Node process of a `memfit run` or of a `memfit guard` child through NODE_OPTIONS=--require.
// It reports V8's own counters to memfit through a FIFO memfit owns, every few tens of
// milliseconds (up to a second for the guard) and once at exit. It never keeps the event
// loop alive (an unref'd timer, synchronous non-blocking writes), never writes to stdout or
// stderr, and never throws into the program: when memfit is gone or the pipe is full it drops
// the report, and after an error it goes quiet.
'use strict';
(function memfitRuntimeView() {
  try {
    const fifo = __MEMFIT_FIFO__;
    const every = __MEMFIT_INTERVAL_MS__;
    const fs = require('fs');
    const v8 = require('v8');
    let threadId = 0;
    let isMain = true;
    try {
      const wt = require('worker_threads');
      threadId = wt.threadId | 0;
      isMain = wt.isMainThread !== false;
    } catch (_) {}
    let fd = -1;
    try {
      fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (_) {
      return;
    }
    // The pid in memfit's PID namespace: /proc is the host's mount even when the command
    // is PID 1 of its own namespace.
    let pid = process.pid;
    try {
      pid = parseInt(fs.readlinkSync('/proc/self'), 10) || pid;
    } catch (_) {}
    let gcMs = 0;
    try {
      const { PerformanceObserver } = require('perf_hooks');
      const observer = new PerformanceObserver((list) => {
        try {
          for (const entry of list.getEntries()) gcMs += entry.duration;
        } catch (_) {}
      });
      observer.observe({ entryTypes: ['gc'] });
    } catch (_) {}
    let quiet = false;
    let timer = null;
    const report = (end) => {
      if (quiet) return;
      try {
        const h = v8.getHeapStatistics();
        const m = process.memoryUsage();
        const line = '{"pid":' + pid + ',"tid":' + threadId + ',"main":' + isMain +
          ',"used":' + h.used_heap_size + ',"total":' + h.total_heap_size +
          ',"limit":' + h.heap_size_limit + ',"ext":' + Math.round(m.external || 0) +
          ',"ab":' + Math.round(m.arrayBuffers || 0) + ',"gc":' + gcMs.toFixed(3) +
          ',"end":' + (end === true) + '}\n';
        fs.writeSync(fd, line);
      } catch (e) {
        // A full pipe drops one report; anything else (memfit gone: EPIPE) ends the view.
        if (e && e.code === 'EAGAIN') return;
        quiet = true;
        try { if (timer) clearInterval(timer); } catch (_) {}
        try { fs.closeSync(fd); } catch (_) {}
      }
    };
    report(false);
    timer = setInterval(report, every, false);
    if (timer && typeof timer.unref === 'function') timer.unref();
    process.on('exit', () => report(true));
  } catch (_) {}
})();
