#!/usr/bin/env node
// The `memfit` command of the npm package: runs the static binary that the platform package
// (@memfit/linux-x64, an optional dependency npm installs only where its os/cpu match) holds,
// with the same arguments and standard streams, and ends as it ended: its exit status, or the
// same signal. No dependencies. The way biome and esbuild ship their binaries through npm.
"use strict";

const { spawn } = require("node:child_process");

const PLATFORMS = { "linux x64": "@memfit/linux-x64" };

function fail(message) {
  process.stderr.write(`memfit: ${message}\n`);
  process.exit(2);
}

function binaryPath() {
  // MEMFIT_BINARY: a memfit binary of your own (a source build, a release tarball).
  if (process.env.MEMFIT_BINARY) return process.env.MEMFIT_BINARY;
  const key = `${process.platform} ${process.arch}`;
  const pkg = PLATFORMS[key];
  if (!pkg) {
    fail(
      `no memfit binary for ${process.platform}/${process.arch}: memfit runs on Linux x86_64 ` +
        "(its measurements read Linux cgroups); on another system run it in a Linux container or VM"
    );
  }
  try {
    return require.resolve(`${pkg}/bin/memfit`);
  } catch {
    fail(
      `the package ${pkg} (memfit's binary) is not installed: reinstall without --omit=optional ` +
        "or --no-optional (npm install -D memfit), or set MEMFIT_BINARY to a memfit binary"
    );
  }
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });

// Signals sent to this launcher (a process manager's SIGTERM, a terminal's SIGINT) reach
// memfit too; memfit decides what its command gets.
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2"];
const forward = (signal) => {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
};
for (const signal of FORWARDED) process.on(signal, forward);

child.on("error", (error) => {
  fail(`cannot run ${binary}: ${error.message}`);
});

child.on("exit", (code, signal) => {
  for (const s of FORWARDED) process.removeListener(s, forward);
  if (signal) {
    // End by the same signal, so that a shell sees 128 + N as it would without the launcher.
    process.kill(process.pid, signal);
    // A signal whose default action does not end a process (or one that cannot be raised).
    process.exit(128 + (require("node:os").constants.signals[signal] || 0));
  }
  process.exit(code);
});
