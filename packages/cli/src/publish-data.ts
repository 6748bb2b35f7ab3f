/**
 * The data argument of `gatehouse publish`: JSON given inline, `-` for standard input, or
 * `@path` for a file, so a payload too long or too awkward to quote can still be sent.
 */
import { readFile, stat } from 'node:fs/promises';
import { UsageError } from './args.js';

/**
 * The most data read from a file or stdin. Far above any gateway's payload limit (64 KiB by
 * default; the gateway answers 413 above its own), it only keeps a runaway pipe from filling memory.
 */
export const MAX_DATA_BYTES = 16 * 1024 * 1024;

async function readStream(input: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > MAX_DATA_BYTES) throw new UsageError(`standard input holds more than ${MAX_DATA_BYTES} bytes; that is not one publication`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readDataFile(path: string): Promise<string> {
  if (path === '') throw new UsageError('"@" must be followed by a file path, e.g. @message.json');
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new UsageError(`data file ${path} is not a file`);
    if (info.size > MAX_DATA_BYTES)
      throw new UsageError(`data file ${path} holds ${info.size} bytes, more than ${MAX_DATA_BYTES}; that is not one publication`);
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UsageError(`data file ${path} does not exist`);
    throw new UsageError(`cannot read data file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Reads and parses the data: `-` reads `stdin` to its end, `@path` reads the file, anything else
 * is the JSON itself. Each mistake says where the data came from and what is wrong with it.
 */
export async function readData(source: string, stdin: AsyncIterable<Buffer | string>): Promise<unknown> {
  let text: string;
  let where: string;
  if (source === '-') {
    text = await readStream(stdin);
    where = 'standard input';
  } else if (source.startsWith('@')) {
    text = await readDataFile(source.slice(1));
    where = `data file ${source.slice(1)}`;
  } else {
    text = source;
    where = '<json>';
  }
  if (text.trim() === '') throw new UsageError(`${where} is empty; expected JSON such as {"text":"hello"}`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON (${(err as Error).message}): ${text.trim().slice(0, 80)}`);
  }
}
