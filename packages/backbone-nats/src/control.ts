/**
 * The control plane of both NATS backbones: one NATS core subject per fleet, beside (never
 * under) the fleet's data subjects. Control messages are fire-and-forget like NATS core itself:
 * at most once, no history, and they reach every node subscribed when they are sent.
 *
 * The subject is `<prefix>~control`. It is outside `<prefix>.>`, so a JetStream stream (which
 * captures `<prefix>.>`) never stores control traffic and a service listening to `<prefix>.>`
 * never sees it; and since `~` is in neither a subject prefix nor an encoded channel token, no
 * data subject of any fleet, and no other fleet's control subject, can ever be the same subject.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { checkControlMessage, decodeControl, encodeControl, type ControlMessage } from '@gatehouse/backbone-kit';
import { within, type NatsLink } from './connection.js';

/** The control subject of the fleet whose subject prefix is `prefix`. */
export function controlSubject(prefix: string): string {
  return `${prefix}~control`;
}

/** One node's end of the control subject: it listens on the link's connection and sends there. */
export class NatsControl {
  readonly subject: string;
  private sub: Subscription | undefined;

  constructor(
    private readonly link: NatsLink,
    prefix: string,
    private readonly timeoutMs: number,
    private readonly onMalformed: ((reason: string, subject: string) => void) | undefined,
  ) {
    this.subject = controlSubject(prefix);
  }

  /**
   * Subscribes to the control subject; resolves once the server confirmed it (a flush). The
   * client library resubscribes after every reconnect, and the backbones' recovery flush confirms
   * it again before they report `up`.
   */
  async listen(nc: NatsConnection): Promise<void> {
    if (this.sub) return;
    this.sub = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err) return;
        const decoded = decodeControl(msg.data);
        if (typeof decoded === 'string') {
          this.link.stats.controlMalformed++;
          this.onMalformed?.(`control message: ${decoded}`, msg.subject);
          return;
        }
        this.link.deliverControl(decoded);
      },
    });
    await within(nc.flush(), this.timeoutMs, `nats subscribe ${this.subject}`);
  }

  /**
   * Sends `msg` to every node listening (this one included). Checked first (`BackboneInputError`);
   * rejects with `BackboneUnavailableError` unless the link is up. Accepted means written to the
   * connection: NATS core has no acknowledgement.
   */
  async send(msg: ControlMessage): Promise<void> {
    checkControlMessage(msg);
    const nc = this.link.assertUp();
    nc.publish(this.subject, encodeControl(msg));
  }
}
