#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm ci` through the root "prepare" script).
import { main } from '../dist/src/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
