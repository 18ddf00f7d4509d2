#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

// Exit explicitly: after a graceful shutdown, pools, timers or the cluster IPC
// channel must not keep the process alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(typeof code === 'number' ? code : 0),
  (err) => {
    console.error(`switchyard: ${err && err.message ? err.message : err}`);
    process.exit(1);
  },
);
