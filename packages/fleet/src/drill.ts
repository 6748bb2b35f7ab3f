#!/usr/bin/env node
/**
 * The drill command: `node packages/fleet/dist/src/drill.js <rolling-restart|kill|backbone-restart|storm> [options]`.
 * `--help` lists the options. Prints one JSON line of figures per run.
 */
import { runDrill } from './drills.js';

process.exitCode = await runDrill(process.argv.slice(2));
