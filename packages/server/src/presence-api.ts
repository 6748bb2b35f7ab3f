/**
 * `POST /api/presence` and `POST /api/presence_stats` with `{"channel": ...}`: a channel's members
 * or counts, fleet-wide, answered from this node's presence book. Same API-key rules as publish: a
 * key limited to channel patterns sees only those channels.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidChannel, matchAny, namespaceOf } from '@gatehouse/protocol';
import { ApiError, readBody, sendJson } from './http-api.js';
import type { ApiKeys } from './http-api.js';
import type { Presence } from './presence.js';

/** Answers one presence API request; rejects with an ApiError. */
export async function handlePresenceApi(
  req: IncomingMessage,
  res: ServerResponse,
  stats: boolean,
  d: { apiKeys: ApiKeys; presence: Presence; maxBodyBytes: number; knownNamespace(ns: string): boolean },
): Promise<void> {
  if (req.method !== 'POST') throw new ApiError('bad_request', `${stats ? '/api/presence_stats' : '/api/presence'} takes POST`);
  const allowed = d.apiKeys.authenticate(req.headers.authorization);
  const body = await readBody(req, d.maxBodyBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new ApiError('bad_request', 'body is not valid JSON');
  }
  const channel = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['channel'] : undefined;
  if (typeof channel !== 'string') throw new ApiError('bad_request', '"channel" must be a string');
  if (!isValidChannel(channel)) throw new ApiError('invalid_channel', 'channel must look like "namespace:name"');
  if (!d.knownNamespace(namespaceOf(channel)))
    throw new ApiError('unknown_namespace', `namespace "${namespaceOf(channel)}" is not configured`);
  if (allowed && !matchAny(allowed, channel)) throw new ApiError('forbidden', `this API key may not read "${channel}"`);
  if (!d.presence.enabled(channel)) throw new ApiError('bad_request', `presence is not enabled for ${channel}`);
  if (stats) sendJson(res, 200, { channel, ...d.presence.stats(channel) });
  else {
    const text = `{"channel":${JSON.stringify(channel)},"members":${d.presence.membersJson(channel)}}`;
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  }
}
