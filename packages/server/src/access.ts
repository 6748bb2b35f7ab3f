/**
 * Who may subscribe to and publish on a channel: the namespace must be configured, and the
 * connection's grant (or the namespace's anonymous and authenticated rules) must allow it. Protocol
 * v1 asks here on every transport (the Pusher door authorises by Pusher's signed auth strings).
 */
import { matchAny, namespaceOf } from '@gatehouse/protocol';
import type { ErrorCode } from '@gatehouse/protocol';
import type { Grant } from './auth.js';
import type { NamespaceOptions } from './options.js';

/** The error code and message a refused request is answered with. */
export type Refusal = readonly [code: ErrorCode, message: string];

/** Looks up a channel's namespace settings (the Publisher does). */
export interface Namespaces {
  namespace(channel: string): NamespaceOptions | undefined;
}

function unknownNamespace(channel: string): Refusal {
  return ['unknown_namespace', `namespace "${namespaceOf(channel)}" is not configured`];
}

/** Why `grant` may not subscribe to `channel`, or undefined when it may. */
export function subscribeRefusal(namespaces: Namespaces, grant: Grant, channel: string): Refusal | undefined {
  const ns = namespaces.namespace(channel);
  if (!ns) return unknownNamespace(channel);
  const allowed = matchAny(grant.subscribe, channel) || ns.anonymous || (ns.subscribe === 'authenticated' && grant.user !== '');
  return allowed ? undefined : ['forbidden', `not allowed to subscribe to ${channel}`];
}

/** Why `grant` may not publish on `channel`, or undefined when it may. */
export function publishRefusal(namespaces: Namespaces, grant: Grant, channel: string): Refusal | undefined {
  if (!namespaces.namespace(channel)) return unknownNamespace(channel);
  return matchAny(grant.publish, channel) ? undefined : ['forbidden', `not allowed to publish to ${channel}`];
}
