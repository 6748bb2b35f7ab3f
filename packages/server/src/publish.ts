/**
 * Publishing from this node (the HTTP API and clients with publish rights): namespace check,
 * retention from the namespace, then the backbone, which delivers to every node including this one.
 */
import { namespaceOf } from '@gatehouse/protocol';
import type { Backbone, Publication } from './backbone.js';
import { BackboneUnavailableError } from './backbone.js';
import { ApiError } from './http-api.js';
import type { GatewayMetrics } from './metrics.js';
import type { NamespaceOptions } from './options.js';

/** Publishes through the backbone with each namespace's retention. */
export class Publisher {
  constructor(
    private readonly backbone: Backbone,
    private readonly namespaces: Record<string, NamespaceOptions>,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** The namespace `channel` belongs to, if it is configured. */
  namespace(channel: string): NamespaceOptions | undefined {
    const name = namespaceOf(channel);
    return Object.hasOwn(this.namespaces, name) ? this.namespaces[name] : undefined;
  }

  /** Publishes JSON text to a channel (the one delivery path). Rejects with an ApiError. */
  async publish(channel: string, data: string, source: 'api' | 'client'): Promise<Publication> {
    const ns = this.namespace(channel);
    if (!ns) throw new ApiError('unknown_namespace', `namespace "${namespaceOf(channel)}" is not configured`);
    try {
      const pub = await this.backbone.publish(channel, data, { historySize: ns.historySize, historyTtlSeconds: ns.historyTtlSeconds });
      this.metrics.publications.inc({ source });
      return pub;
    } catch (err) {
      this.metrics.backbonePublishErrors.inc();
      if (err instanceof BackboneUnavailableError) throw new ApiError('unavailable', err.message, 1);
      throw err;
    }
  }
}
